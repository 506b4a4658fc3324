"""The aiohttp transport's ``http_req_sending`` (k6: the time to write the request): a large
body to a server that reads it slowly takes time to send, and that time is sending, not
waiting. Real server on 127.0.0.1 (a thread reading 64 KB every 2 ms, a 64 KB receive
buffer)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from simulator.http.aio import AiohttpTransport
from simulator.http.transport import Request

#: 8 MB beyond what the kernel holds on loopback (here: a send buffer growing to 4 MB,
#: net.ipv4.tcp_wmem, and the server's 64 KB receive buffer)
BODY = 12 * 1024 * 1024


class _SlowReader:
    """Reads a request's body 64 KB per 2 ms (at most ~30 MB/s), then answers 200."""

    def __init__(self) -> None:
        self.lst = socket.socket()
        self.lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # accepted ones inherit
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(4)
        self.port = int(self.lst.getsockname()[1])
        self.read_s = 0.0  # how long the last body took to read
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.lst.accept()
            with conn:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(65536)
                head, _, got = buf.partition(b"\r\n\r\n")
                size = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                left, t0 = size - len(got), time.perf_counter()
                while left > 0:
                    data = conn.recv(min(left, 65536))
                    if not data:
                        return
                    left -= len(data)
                    time.sleep(0.002)
                self.read_s = time.perf_counter() - t0
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def close(self) -> None:
        self.lst.close()


@pytest.fixture
def slow_reader() -> Iterator[_SlowReader]:
    srv = _SlowReader()
    try:
        yield srv
    finally:
        srv.close()


@pytest.mark.slow
def test_a_slowly_read_body_is_sending_not_waiting(slow_reader: _SlowReader) -> None:
    """12 MB read slowly: until its last 4 MB fit in the kernel's buffers the body is being
    written, which k6 counts as http_req_sending (Go's write returns once the kernel holds
    it); waiting (from there to the answer's headers) is the rest. Before: sending 0.0 and
    waiting the whole 0.71 s (6 MB read at ~13 MB/s)."""

    async def go() -> tuple[float, float, float]:
        tr = AiohttpTransport(f"http://127.0.0.1:{slow_reader.port}", timeout=10.0)
        try:
            body = b"\0" * BODY
            resp = await tr.send(Request("POST", "/up", {"Content-Type": "x/y"}, body))
        finally:
            await tr.close()
        assert resp.status == 200, resp.error
        begin = resp.started + resp.blocked + resp.connecting
        return resp.sending, resp.headers_at - begin - resp.sending, resp.headers_at - begin

    sending, waiting, total = asyncio.run(go())
    assert slow_reader.read_s > 0.3  # the server took its time
    assert sending > 0.15 and sending > waiting, (sending, waiting, total)
    assert waiting >= 0 and sending + waiting == pytest.approx(total)
