"""Every request ends in exactly one recorded outcome, against real sockets on loopback: peers
that close at once, resets before the answer on a reused connection (never a silent re-send),
and targets with a path prefix — through both transports."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from simulator.config import parse_config
from simulator.http import ErrorKind, Request, make_transport
from simulator.metrics import failure_breakdown
from simulator.run.runner import Environment, RunResult, build_bank

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _raw_server(handler: Handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return head, body


@pytest.mark.slow
def test_peer_that_accepts_and_closes_every_request_is_counted_once() -> None:
    """The connect race: a server that accepts then closes at once. Before the fix, a request
    whose fresh connection was already closed raised inside the connect task (uvloop refuses
    writes on a closed transport): never counted, its device never released. On uvloop, as
    ``scfleet run`` is."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(_accept_and_close_run())
    reg = result.registry
    assert reg.aggregate("http_reqs", {}, "count") == 800
    assert reg.aggregate("http_req_failed", {}, "rate") == 1.0
    assert reg.aggregate("dropped_iterations", {}, "count") == 0
    assert reg.aggregate("interrupted_iterations", {}, "count") == 0
    assert sum(d.requests for d in result.devices) == 800
    assert sum(d.failed for d in result.devices) == 800
    reasons = failure_breakdown(reg)  # every failure has a reason and k6's code
    assert sum(r.count for r in reasons) == 800
    assert all(r.status == 0 and r.error and r.error_code >= 1000 for r in reasons)


@contextlib.contextmanager
def _slamming_server() -> Iterator[str]:
    """A server (in a thread, like a separate process) that accepts and resets at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)

    def serve() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(5)


async def _accept_and_close_run() -> RunResult:
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 400,
                    "duration": "2s",
                    "pre_allocated_devices": 20,
                    # headroom, so a loaded host's slower failures are not dropped iterations;
                    # a device never released (the old bug) still exhausts it and drops
                    "max_devices": 200,
                    "graceful_stop": "3s",
                    "device": {"chunk_bytes": 3200},
                }
            }
        }
    )
    with _slamming_server() as url:
        transport = make_transport(url, timeout=30.0)
        try:
            return await asyncio.wait_for(
                Environment(cfg, transport, bank=build_bank(cfg)).run(), 30
            )
        finally:
            await transport.close()


@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_post_reset_before_the_answer_on_a_reused_connection_is_not_resent(
    kind: str,
) -> None:
    """The second POST on a keep-alive connection reaches the server, which then resets the
    connection without answering. The client must count a failure, not re-send it on a new
    connection (the server may have stored it: a silent duplicate upload)."""
    seen: Counter[str] = Counter()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                head, _ = await _read_request(reader)
                seq = re.search(rb"(?i)\r\nx-sequence: *(\d+)", head)
                seen[seq.group(1).decode() if seq else "?"] += 1
                n += 1
                if n == 2:  # the request reached us; the answer never leaves
                    writer.transport.abort()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server, url = await _raw_server(serve)
    transport = make_transport(url, timeout=5.0, kind=kind)
    await transport.start()
    try:
        for seq in range(2):
            r = await transport.send(
                Request("POST", "/api/upload", {"X-Sequence": str(seq)}, b"x" * 1000)
            )
            if seq == 0:
                assert r.status == 200, r.error
        assert r.status == 0
        assert r.kind in (ErrorKind.RESET, ErrorKind.CLOSED), r.error
        assert r.error == r.kind.tag
        await asyncio.sleep(0.2)  # a re-send, if any, would arrive now
    finally:
        await transport.close()
        server.close()
    assert seen == {"0": 1, "1": 1}


async def test_get_on_a_stale_keepalive_connection_is_replayed_once() -> None:
    """Idempotent requests may be retried on a fresh connection (k6/Go and aiohttp do)."""
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                await _read_request(reader)
                count += 1
                if count == 2:
                    writer.transport.abort()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server, url = await _raw_server(serve)
    transport = make_transport(url, timeout=5.0)
    try:
        for _ in range(2):
            r = await transport.send(Request("GET", "/"))
            assert r.status == 200, r.error
    finally:
        await transport.close()
        server.close()
    assert count == 3


@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_target_path_prefix_is_kept(kind: str) -> None:
    paths: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    transport = make_transport(f"http://127.0.0.1:{port}/prefix/v2/", timeout=5.0, kind=kind)
    await transport.start()
    try:
        r = await transport.send(Request("POST", "/api/upload", {}, b"abc"))
        assert r.status == 200, r.error
    finally:
        await transport.close()
        await runner.cleanup()
    assert paths == ["/prefix/v2/api/upload"]


@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_both_clients_map_failures_into_one_vocabulary(kind: str, free_port: int) -> None:
    """Refused and timed-out requests get the same error tag and k6 code from either client."""
    transport = make_transport(f"http://127.0.0.1:{free_port}", timeout=0.5, kind=kind)
    await transport.start()
    try:
        r = await transport.send(Request("POST", "/api/upload", {}, b"abc"))
    finally:
        await transport.close()
    assert (r.status, r.kind, r.error, r.kind and r.kind.code) == (
        0,
        ErrorKind.REFUSED,
        "refused",
        1212,
    )

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(2)  # never answers
        writer.close()

    server, url = await _raw_server(silent)
    transport = make_transport(url, timeout=0.5, kind=kind)
    await transport.start()
    try:
        r = await transport.send(Request("POST", "/api/upload", {}, b"abc"))
    finally:
        await transport.close()
        server.close()
    assert (r.status, r.kind, r.error) == (0, ErrorKind.TIMEOUT, "timeout")
    assert r.kind is not None and r.kind.code == 1050
