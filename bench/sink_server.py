"""A minimal, fast HTTP/1.1 sink for benchmarks: reads each request body, answers 200 JSON.

It stands in for nginx so that the benchmark measures the load generators, not the server:
a raw asyncio protocol on uvloop, keep-alive, no framework.

    python bench/sink_server.py [PORT]   # prints READY http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
    b'\r\n{"status":"ok"}'
)
RESPONSE_CLOSE = RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)


class Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = -1  # body bytes still to skip; -1 while reading headers
        self.close_after = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).lower()
                del self.buf[: end + 4]
                self.need = 0
                for line in head.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        self.need = int(line[15:])
                self.close_after = b"connection: close" in head
            if len(self.buf) < self.need:
                return
            del self.buf[: self.need]
            self.need = -1
            assert self.transport is not None
            if self.close_after:
                self.transport.write(RESPONSE_CLOSE)
                self.transport.close()
                return
            self.transport.write(RESPONSE)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", port, backlog=4096)
    print(f"READY http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
