"""``http_req_sending`` is the time the body took to go out, as k6's is, not the time to hand
it to the transport's buffer.

Found with an 8 MB upload to a loopback server that reads the body only after 1 s: the fast
client reported sending 1.7 ms and waiting 1.05 s (k6: sending ~1 s, the kernel's socket
buffer full until the server reads), so a server slow to take uploads read as slow to answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from simulator.http.fast import FastTransport
from simulator.http.transport import Request

HOLD = 0.4  # the server reads nothing of the body for this long
BODY = 8_000_000  # beyond what loopback's socket buffers take without the server reading


class _SlowReader(asyncio.Protocol):
    """Reads the request head, stops reading for HOLD, then takes the body and answers."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport
        self.buf = bytearray()
        self.held = False

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        if not self.held:
            self.held = True
            self.t.pause_reading()
            asyncio.get_running_loop().call_later(HOLD, self.t.resume_reading)
            return
        if len(self.buf) >= end + 4 + BODY:
            self.buf.clear()
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def test_a_body_the_server_takes_late_is_sending_time_not_waiting() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_SlowReader, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = FastTransport(f"http://127.0.0.1:{port}", timeout=10.0)
    try:
        t0 = time.perf_counter()
        resp = await transport.send(Request("POST", "/up", body=b"\0" * BODY))
        assert resp.status == 200 and time.perf_counter() - t0 >= HOLD
        begin = resp.started + resp.blocked + resp.connecting
        waiting = resp.headers_at - begin - resp.sending  # as the recorder takes it
        assert resp.sending >= HOLD * 0.9, (resp.sending, waiting)
        assert 0 <= waiting < HOLD / 2, (resp.sending, waiting)
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
