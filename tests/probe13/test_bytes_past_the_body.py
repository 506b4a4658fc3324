"""Bytes a server sends past a response's framing do not become the next request's reply.

Found with a loopback server answering ``Content-Length: 2`` then ``okXX``: the fast client
kept ``XX`` in the connection's buffer and pooled it, so the next request on it read
``XXHTTP/1.1 200 OK`` and failed as bad-response — 30 of 60 uploads counted failed, each one
the server had answered well, blamed for the answer before it. Go (k6) closes such a
connection ("Unsolicited response received on idle HTTP channel").
"""

from __future__ import annotations

import asyncio

from simulator.http.fast import FastTransport
from simulator.http.transport import Request


async def test_a_connection_with_bytes_past_the_reply_is_not_reused() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokXX")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = FastTransport(f"http://127.0.0.1:{port}", timeout=5)
    try:
        replies = [await t.send(Request("GET", "/")) for _ in range(6)]
        assert [(r.status, r.body, r.error) for r in replies] == [(200, b"ok", None)] * 6
    finally:
        await t.close()
        server.close()
        await server.wait_closed()
