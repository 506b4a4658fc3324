"""A response head whose lines end in a bare LF is read as Go's net/http (so k6) and aiohttp
read it: the answer counts, with its status and body.

Found by probe17 against a loopback server answering ``HTTP/1.1 200 OK\\nContent-Length:
2\\n\\nok`` (small embedded HTTP servers do): aiohttp read 200 "ok", the fast client waited for a
CRLF blank line that never came and failed the request as ``closed-before-answer`` (or as a
timeout, on a connection kept open), so ``http_req_failed`` broke where k6's held.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest
from raw_http import loopback, read_request

from simulator.http import Request, make_transport


def _answer(data: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            buf = b""
            for _ in range(2):  # two requests on the keep-alive connection
                rest = read_request(conn, buf)
                if rest is None:
                    return
                buf = rest
                conn.sendall(data)
            time.sleep(0.5)

    return serve


@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
@pytest.mark.parametrize(
    ("data", "body"),
    [
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", b"ok"),
        (b"HTTP/1.1 201 Created\nContent-Length: 6\n\n\r\n\r\nok", b"\r\n\r\nok"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\nok", b"ok"),  # a CRLF status line, then LF
        (b"HTTP/1.1 200 OK\r\nContent-Length: 6\n\n\r\n\r\nok", b"\r\n\r\nok"),
        (b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\r\nok\r\n0\r\n\r\n", b"ok"),
    ],
    ids=["lf", "crlfcrlf-in-body", "mixed", "mixed-crlfcrlf-in-body", "chunked"],
)
async def test_a_head_of_bare_lf_lines_is_an_answer(kind: str, data: bytes, body: bytes) -> None:
    with loopback(_answer(data), threaded=True) as url:
        transport = make_transport(url, 2.0, kind)
        try:
            for _ in range(2):
                resp = await transport.send(Request("GET", "/x"))
                assert (resp.status, resp.error, resp.body) == (int(data[9:12]), None, body)
        finally:
            await transport.close()
