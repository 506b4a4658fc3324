"""A request whose reused connection dies before any answer, and whose retry's dial is then
refused (the server went down between two requests): its k6 waits stay sane. aiohttp retries
an idempotent request once on a fresh connection, the fast client replays it (Go's net/http,
hence k6, does the same); either way the request had a connection (the reused one) before the
dial that failed. Real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from simulator.http.errors import ErrorKind
from simulator.http.fast import make_transport
from simulator.http.transport import Request


def _answers_once_then_goes_down() -> tuple[int, threading.Thread]:
    """A keep-alive server that answers one request, then, on the next one, stops listening
    and closes the connection without an answer."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    port = int(lst.getsockname()[1])

    def serve() -> None:
        conn, _ = lst.accept()
        with conn:
            for answer in (True, False):
                buf = b""
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                if answer:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                else:
                    lst.close()  # the retry's dial is refused

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return port, th


@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_a_retry_refused_after_a_reused_connection_died_keeps_the_waits_sane(
    kind: str,
) -> None:
    """The second GET had the reused connection at once: connecting 0 (no dial of its that
    connected) and blocked only its wait for that connection. Before, aiohttp's gave
    connecting = reuse instant - failed dial's start < 0 (-1.5 ms), exported as is by
    --out json/csv, and blocked held the failed exchange."""
    port, th = _answers_once_then_goes_down()
    tr = make_transport(f"http://127.0.0.1:{port}", 5.0, kind)
    try:
        await tr.start()
        first = await tr.send(Request("GET", "/a"))
        assert first.status == 200 and first.connecting > 0
        second = await tr.send(Request("GET", "/b"))
    finally:
        await tr.close()
        await asyncio.to_thread(th.join, 5)
    assert second.kind is ErrorKind.REFUSED
    assert second.connecting == 0.0
    # the reused connection was there at once: blocked up to it, on both (not 0: no connection)
    assert 0.0 < second.blocked < 0.05, second
    assert second.ended - second.started >= second.blocked + second.connecting
