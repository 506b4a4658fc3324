"""A connect that is cancelled (the run ending: ``FastTransport.close``) or times out leaves
nothing behind: no request goes out after the cancel, no response is recorded, and the
half-made socket is closed. Python 3.11's ``asyncio.wait_for`` returned the connection and
dropped a cancel that came in the loop turn the connection completed: the request was then
written on it after the stop. Real sockets on 127.0.0.1; the peer tells what reached it."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import pytest

from simulator.http import fast
from simulator.http.errors import ErrorKind
from simulator.http.fast import FastTransport
from simulator.http.transport import Request, Response


@dataclass
class _Peer:
    """One connection the server accepted: bytes it got, and whether the client closed it."""

    received: int = 0
    eof: bool = False


async def _silent_server(peers: list[_Peer]) -> asyncio.Server:
    """Accepts, reads until the client closes, never answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _Peer()
        peers.append(peer)
        try:
            while data := await reader.read(65536):
                peer.received += len(data)
        except ConnectionError:
            pass
        peer.eof = True
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _until(cond: object, seconds: float) -> None:
    """Poll ``cond()`` every 10 ms until it holds or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.01)


def test_connect_cancelled_as_the_connection_completes_sends_nothing_and_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cancel comes k loop turns after the connection is made (k = 0..7), which sweeps the
    turn the connect completes in whatever the event loop's internal ordering. Whenever the
    cancel reached the connect task while it still ran, the task ends cancelled, no byte
    reached the server, no response was recorded and the server sees the socket closed.

    Before (``asyncio.wait_for``): at k = 1 the task returned normally and wrote the request."""
    delivered_at: list[int] = []

    async def one(k: int) -> None:
        loop = asyncio.get_running_loop()
        peers: list[_Peer] = []
        srv = await _silent_server(peers)
        port = srv.sockets[0].getsockname()[1]
        tr = FastTransport(f"http://127.0.0.1:{port}", timeout=10.0)
        await tr.start()
        cancel_delivered: list[bool] = []
        task: asyncio.Task[None] | None = None

        class Hooked(fast._Conn):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)

                def after(n: int) -> None:
                    if n:
                        loop.call_soon(after, n - 1)
                    else:
                        assert task is not None
                        cancel_delivered.append(task.cancel())

                after(k)

        monkeypatch.setattr(fast, "_Conn", Hooked)
        responses: list[Response] = []
        tr.submit(Request("GET", "/x"), responses.append)
        (task,) = tr._connecting
        try:
            await asyncio.wait({task}, timeout=10.0)
            assert task.done()
            await _until(lambda: cancel_delivered, 5.0)
            assert cancel_delivered, f"k={k}: the hook never ran"
            if not cancel_delivered[0]:
                return  # the connect (and the write) finished before the cancel: no race here
            delivered_at.append(k)
            assert task.cancelled(), f"k={k}: the connect task carried on after its cancel"
            await _until(lambda: peers and all(p.eof for p in peers), 5.0)
            assert [p.received for p in peers] == [0] * len(peers), f"k={k}: request sent"
            assert all(p.eof for p in peers), f"k={k}: the half-made socket is still open"
            assert responses == [], f"k={k}: a response was recorded after the cancel"
            assert tr.connects == 0 and not tr._all
        finally:
            await tr.close()
            srv.close()
            await srv.wait_closed()

    async def main() -> None:
        for k in range(8):
            await one(k)

    asyncio.run(main())
    assert 0 in delivered_at  # the sweep did reach the connect task while it ran


def test_connect_timeout_closes_the_half_made_socket() -> None:
    """A TLS connect whose handshake is never answered times out as CONNECT_TIMEOUT and its
    socket is closed (the server sees EOF), not left open until the process ends."""

    async def main() -> None:
        peers: list[_Peer] = []
        srv = await _silent_server(peers)
        port = srv.sockets[0].getsockname()[1]
        tr = FastTransport(
            f"https://127.0.0.1:{port}", timeout=0.3, ssl_context=ssl.create_default_context()
        )
        await tr.start()
        try:
            t0 = time.monotonic()
            resp = await asyncio.wait_for(tr.send(Request("GET", "/x")), 10.0)
            assert resp.kind is ErrorKind.CONNECT_TIMEOUT, resp
            assert time.monotonic() - t0 < 5.0
            await _until(lambda: peers and all(p.eof for p in peers), 5.0)
            assert len(peers) == 1 and peers[0].eof, "the timed-out socket is still open"
            assert peers[0].received > 0  # the ClientHello: the connection was half made
            assert tr.connects == 0 and not tr._all
        finally:
            await tr.close()
            srv.close()
            await srv.wait_closed()

    asyncio.run(main())
