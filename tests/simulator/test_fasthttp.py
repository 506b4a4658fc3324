"""The lean HTTP/1.1 client against real servers on loopback: framing, keep-alive, failures."""

from __future__ import annotations

import asyncio

from aiohttp import web

from simulator.http import ErrorKind, FastTransport, Request


async def _aiohttp_server(handler_map: dict[str, object]) -> tuple[web.AppRunner, str]:
    app = web.Application(client_max_size=10 * 1024 * 1024)
    for path, h in handler_map.items():
        app.router.add_route("*", path, h)  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_post_body_headers_keepalive_and_cookies() -> None:
    peers: list[tuple[str, int]] = []

    async def upload(request: web.Request) -> web.Response:
        body = await request.read()
        peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        resp = web.json_response(
            {
                "len": len(body),
                "dev": request.headers["X-Device-ID"],
                "cookie": request.cookies.get("session"),
            }
        )
        resp.set_cookie("session", "abc", httponly=True)
        return resp

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"hello ", b"chunked ", b"world"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    runner, url = await _aiohttp_server({"/up": upload, "/chunked": chunked})
    t = FastTransport(url, timeout=5)
    try:
        body = [b"x" * 1000, memoryview(b"y" * 31000)]
        for i in range(5):
            r = await t.send(
                Request("POST", "/up", {"X-Device-ID": f"d{i}"}, body, True, {"session": "s1"})
            )
            assert r.status == 200, r.error
            assert r.json() == {"len": 32000, "dev": f"d{i}", "cookie": "s1"}
            assert r.set_cookies == {"session": "abc"}
            assert r.started <= r.headers_at <= r.ended
        assert t.connects == 1 and len(set(peers)) == 1  # keep-alive reused one connection
        r = await t.send(Request("GET", "/chunked"))
        assert r.status == 200 and r.body == b"hello chunked world"
        r = await t.send(Request("POST", "/up", {"X-Device-ID": "c"}, b"abc", keep_alive=False))
        assert r.status == 200
        r = await t.send(Request("POST", "/up", {"X-Device-ID": "c"}, b"abc"))
        assert r.status == 200 and t.connects == 2
        assert r.connecting > 0
        r = await t.send(Request("GET", "/missing"))
        assert r.status == 404
    finally:
        await t.close()
        await runner.cleanup()


async def test_refused_reset_timeout_and_garbage(free_port: int) -> None:
    t = FastTransport(f"http://127.0.0.1:{free_port}", timeout=0.5)
    r = await t.send(Request("GET", "/"))
    assert r.status == 0 and r.error == "refused" and r.kind is ErrorKind.REFUSED

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readuntil(b"\r\n\r\n")
        if b"/reset" in line:
            writer.transport.abort()
        elif b"/garbage" in line:
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()
        elif b"/slow" in line:
            await asyncio.sleep(2)
        elif b"/close" in line:
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil-close")
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = FastTransport(f"http://127.0.0.1:{port}", timeout=0.5)
    try:
        r = await t.send(Request("GET", "/reset"))
        assert r.status == 0 and r.error in ("closed-before-answer", "reset")
        r = await t.send(Request("GET", "/garbage"))
        assert r.status == 0 and r.error == "bad-response"
        r = await t.send(Request("GET", "/slow"))
        assert r.status == 0 and r.error == "timeout" and r.kind is ErrorKind.TIMEOUT
        r = await t.send(Request("GET", "/close"))
        assert r.status == 200 and r.body == b"until-close"
    finally:
        await t.close()
        server.close()


async def test_stale_keepalive_is_retried_once() -> None:
    """A server that closes idle connections must not turn into failed requests."""
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        await reader.readuntil(b"\r\n\r\n")
        count += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # closes without saying Connection: close

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = FastTransport(f"http://127.0.0.1:{port}", timeout=2)
    try:
        for _ in range(3):
            r = await t.send(Request("GET", "/"))
            await asyncio.sleep(0.05)
            assert r.status == 200, r.error
        assert count == 3
    finally:
        await t.close()
        server.close()


def test_host_header_port() -> None:
    assert FastTransport("http://127.0.0.1:8080").host_header == "127.0.0.1:8080"
    assert FastTransport("http://localhost").host_header == "localhost"


class _Wire:
    """The asyncio transport a :class:`_Conn` writes to, for feeding it bytes split anywhere."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _replies(stream: bytes, cuts: list[int]) -> list[tuple[int, bytes, str, bool]]:
    """(status, body, raw head, keep-alive) of each reply a connection parses from ``stream``
    when its bytes arrive in the reads ``cuts`` splits them into (one exchange per reply)."""
    from simulator.http.fast import _Conn, _Reply

    conn = _Conn()
    conn.connection_made(_Wire())  # type: ignore[arg-type]
    got: list[tuple[int, bytes, str, bool]] = []

    def on_reply(r: _Reply | ErrorKind) -> None:
        assert isinstance(r, _Reply), r
        got.append((r.status, r.body, r.raw_head.decode(), conn.keep))
        conn.on_reply = on_reply  # the next exchange on the same connection

    conn.on_reply = on_reply
    edges = [0, *cuts, len(stream)]
    for a, b in zip(edges, edges[1:], strict=False):
        if b > a:
            conn.data_received(stream[a:b])
    return got


def test_reply_parsing_is_the_same_however_the_reads_split_it() -> None:
    """The whole reply in one read takes a shortcut past the connection's buffer; a reply in
    pieces, an interim 100 before it, a chunked body or a second reply on the connection go
    through the buffer: every split of the same bytes parses to the same replies."""
    first = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    )
    second = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    third = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    want = [
        (201, b"hello", "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5", 1),
        (200, b"abcde", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", 1),
        (204, b"", "HTTP/1.1 204 No Content\r\nConnection: close", 0),
    ]
    stream = first + second + third
    ends = [len(first), len(first) + len(second)]
    assert _replies(stream, ends) == want  # one read per reply: the shortcut, except the 100
    for cut in range(1, len(stream)):  # every two-way split within and across replies
        assert _replies(stream, sorted({cut, *ends})) == want, cut
    assert _replies(stream, list(range(1, len(stream)))) == want  # a byte per read


async def test_negative_content_length_is_a_bad_response_at_once() -> None:
    """``Content-Length: -5`` is no framing at all: the request fails as a bad response when
    the head arrives (it used to wait for the timeout, its body read as the next head)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client gives up on the connection

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = FastTransport(f"http://127.0.0.1:{port}", timeout=30)
    try:
        r = await asyncio.wait_for(t.send(Request("GET", "/")), 20)
        assert r.status == 0 and r.kind is ErrorKind.BAD_RESPONSE, r.error
    finally:
        await t.close()
        server.close()
