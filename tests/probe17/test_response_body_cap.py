"""A response body is read to its end but at most ``MAX_KEPT_BODY`` bytes of it are kept, in
either client: a hostile or broken server sending a huge or endless body costs time (up to the
request timeout), never the generator's memory.

Found by probe17 against a loopback server: 2 uploads answered with a 2 GB ``Content-Length``
body (or a body ended by close) took ``scfleet run`` to 1.8-2.1 GB RSS (aiohttp: 2.3 GB), an
endless chunked one to 3.0 GB with aiohttp; the fast client re-parsed the chunked body from
its first chunk on every read (quadratic: the loop stalled and the 6 s timeout fired at 10.8
s). With the default 60 s timeout and a few devices, that is the machine's memory.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest
from raw_http import loopback, read_request

from simulator.http import ErrorKind, Request, Response, make_transport
from simulator.http.transport import MAX_KEPT_BODY

BIG = 24 * 1024 * 1024  # well past the cap, small enough to stream in a test
BLOCK = b"x" * 65536

Serve = Callable[[socket.socket, threading.Event], None]


def _server(frame: str) -> Serve:
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            if read_request(conn, b"") is None:
                return
            try:
                if frame == "length":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
                    for _ in range(BIG // len(BLOCK)):
                        conn.sendall(BLOCK)
                elif frame == "close":
                    conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
                    for _ in range(BIG // len(BLOCK)):
                        conn.sendall(BLOCK)
                    conn.shutdown(socket.SHUT_WR)
                elif frame == "chunked":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for _ in range(BIG // len(BLOCK)):
                        conn.sendall(b"10000\r\n" + BLOCK + b"\r\n")
                    conn.sendall(b"0\r\n\r\n")
                elif frame == "endless":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    while not stop.is_set():
                        conn.sendall(b"10000\r\n" + BLOCK + b"\r\n")
                time.sleep(1)
            except OSError:
                pass

    return serve


async def _send(url: str, kind: str, timeout: float) -> tuple[Response, int, float]:
    """The response, the peak of Python's allocations meanwhile and the seconds it took."""
    transport = make_transport(url, timeout, kind)
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        resp = await transport.send(Request("POST", "/up", body=b"abc"))
        return resp, tracemalloc.get_traced_memory()[1], time.monotonic() - t0
    finally:
        tracemalloc.stop()
        await transport.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
@pytest.mark.parametrize("frame", ["length", "close", "chunked"])
async def test_a_huge_body_is_read_whole_and_kept_in_part(kind: str, frame: str) -> None:
    with loopback(_server(frame), threaded=True) as url:
        resp, peak, _ = await _send(url, kind, 60.0)
    assert isinstance(resp, Response)
    assert resp.status == 200, resp.error
    assert (len(resp.body), resp.body_cut, resp.body_size) == (
        MAX_KEPT_BODY,
        BIG - MAX_KEPT_BODY,
        BIG,
    )
    assert resp.received >= BIG
    with pytest.raises(ValueError, match="only the first 1048576 were kept"):
        resp.json()
    assert peak < 4 * MAX_KEPT_BODY + 4 * 1024 * 1024, peak


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_an_endless_body_times_out_in_bounded_memory(kind: str) -> None:
    with loopback(_server("endless"), threaded=True) as url:
        resp, peak, took = await _send(url, kind, 3.0)
    assert isinstance(resp, Response)
    assert (resp.status, resp.kind) == (0, ErrorKind.TIMEOUT)
    assert took < 6.0
    assert peak < 4 * MAX_KEPT_BODY + 4 * 1024 * 1024, peak
