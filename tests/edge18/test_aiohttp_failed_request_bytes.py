"""The aiohttp transport counts a failed request's bytes as the fast client does (and k6, on the
connection): what it read in ``data_received`` and what it wrote in ``data_sent``, whatever
became of the request. Before, its failure path built the response with no byte counts: 0 and 0
for answers k6 1.1 counted 43, 25 and 27 bytes of (tests/edge17/test_failed_request_data_received.py).

The server keeps every byte it read, so the test holds both clients to the wire, not to an
estimate.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from raw_http import loopback

from simulator.http import Request, make_transport

ANSWERS = {
    "/partial": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",  # body cut: 'truncated'
    "/garbled": b"XYZZY not http at all\r\n\r\n",  # 'bad-response'
    "/head": b"HTTP/1.1 200 OK\r\nContent-Le",  # head cut mid-line: 'closed-before-answer'
    "/ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: abcdef\r\n\r\nok",  # answered
}


def _answering(
    read: dict[str, int], answered: dict[str, int]
) -> Callable[[socket.socket, threading.Event], None]:
    """Answers each request on its own connection, noting the bytes it read and the answers it
    sent per path (an idempotent request's retry is another attempt on the wire)."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            path = buf.split(b" ")[1].decode()
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in buf.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(buf) < buf.index(b"\r\n\r\n") + 4 + length:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
            read[path] = read.get(path, 0) + len(buf)
            answered[path] = answered.get(path, 0) + 1
            conn.sendall(ANSWERS[path])
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)  # until the client closes

    return serve


@pytest.mark.parametrize("transport", ["aiohttp", "fast"])
@pytest.mark.parametrize("body", [b"", b"x" * 3000], ids=["get", "post"])
async def test_a_failed_request_counts_the_bytes_on_the_wire(transport: str, body: bytes) -> None:
    read: dict[str, int] = {}
    answered: dict[str, int] = {}
    with loopback(_answering(read, answered), threaded=True) as url:
        client = make_transport(url, 5.0, transport)
        try:
            for path, answer in ANSWERS.items():
                req = Request("POST" if body else "GET", path, body=body or None)
                resp = await client.send(req)
                if path == "/ok":
                    assert resp.status == 200 and resp.error is None, resp
                else:
                    assert resp.status == 0 and resp.error is not None, (path, resp)
                    # what a failed request wrote is the exact count on either client
                    assert resp.sent == read[path], (path, resp)
                assert resp.received == len(answer) * answered[path], (path, resp, answered)
                assert resp.sent >= len(body) > 0 or not body
        finally:
            await client.close()
