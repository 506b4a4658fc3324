"""A request's wait for a connection is k6's ``http_req_blocked`` and its dial is
``http_req_connecting``, neither server time: a request that finds no idle connection waits for
a freed connection or for its dial (the fast client's capped dials, aiohttp's connector limit),
and neither wait must land in ``http_req_duration`` or ``http_req_waiting`` (k6: duration =
sending + waiting + receiving), whichever transport carries it. Real servers on 127.0.0.1, real
clients, recorded through the real path (``Behaviour.record``)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.http import fast
from simulator.http.aio import AiohttpTransport
from simulator.http.fast import FastTransport
from simulator.http.transport import Request, Response, Transport
from simulator.metrics import IntervalStats, Registry
from simulator.metrics.registry import TREND_SCALE
from simulator.run.devices import Behaviour, RunContext

#: how long the first request holds the only connection (s)
HOLD = 0.5


async def _server(freed: list[float] | None = None) -> asyncio.Server:
    """200 ``ok``, keep-alive; a request for ``/slow`` is answered after :data:`HOLD`, its
    answer's time (perf_counter) appended to ``freed``: a request that waits for /slow's
    connection is sent, answered and read after it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                if head.startswith(b"GET /slow"):
                    await asyncio.sleep(HOLD)
                    if freed is not None:
                        freed.append(time.perf_counter())
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _url(srv: asyncio.Server) -> str:
    return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


def _recorded(responses: list[Response]) -> dict[str, float]:
    """The responses recorded as a run records them: each HTTP trend's max, in seconds."""
    from scfleet import api

    cfg = api.load(Path(__file__).resolve().parents[2] / "configs" / "seed_plan.toml")
    ctx = RunContext(Registry(), transport=None, bank=None, loop_to_perf=0.0)  # type: ignore[arg-type]
    beh = Behaviour(cfg.scenarios[0], ctx, IntervalStats())
    rec = beh.recorder("GET", "/x")
    for resp in responses:
        beh.record(rec, resp, None, run_checks=False)
    rec.flush()
    out: dict[str, float] = {}
    for (name, _tags), series in ctx.registry.series.items():
        if name.startswith("http_req_") and hasattr(series, "hist") and series.hist.count:
            out[name] = max(out.get(name, 0.0), series.hist.percentile(100) / TREND_SCALE / 1e3)
    return out


async def _until(cond: object, what: str) -> None:
    for _ in range(500):
        if callable(cond) and cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def test_a_wait_for_a_freed_connection_is_blocked_not_duration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The only connection is busy for HOLD s (/slow); a second request waits for it (its
    own dial held) and is answered at once. Its duration and waiting hold nothing of HOLD;
    its blocked time is ~HOLD. Before: http_req_duration ~HOLD (the wait).

    Duration and waiting are bounded by the time from /slow's answer (the connection freed) to
    the waiting request's answer (``after``), not by a fixed HOLD / 2: a busy machine that
    stalls this process mid-exchange no longer fails it, while a duration holding the wait
    still exceeds ``after`` by ~HOLD."""
    freed: list[float] = []
    srv = await _server(freed)
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    slow: list[Response] = []
    got: list[Response] = []
    dial_go = asyncio.Event()
    real_connect = tr._connect
    try:
        tr.submit(Request("GET", "/slow"), slow.append)
        await _until(lambda: tr.connects == 1 and not tr._connecting, "no first connection")

        async def held() -> fast._Conn:
            await dial_go.wait()
            return await real_connect()

        monkeypatch.setattr(tr, "_connect", held)
        tr.submit(Request("GET", "/fast"), got.append)  # waits for /slow's connection
        await _until(lambda: got, "the waiting request was not served")
        after = time.perf_counter() - freed[0]
        bound = after * 1.01 + 1e-3  # the histogram's rounding (< 0.1 %), 1 µs units
        resp = got[0]
        assert resp.status == 200 and resp.connecting == 0.0
        assert resp.blocked > HOLD * 0.8, resp
        m = _recorded(got)
        assert m["http_req_duration"] <= bound, (m, after)
        assert m["http_req_waiting"] <= bound, (m, after)
        assert m["http_req_blocked"] > HOLD * 0.8, m  # k6's name for the wait
    finally:
        dial_go.set()
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_a_wait_for_a_paced_dial_is_blocked_not_duration() -> None:
    """DIALS_IN_FLIGHT + 1 requests in one turn, then the loop is held HOLD s before any dial
    starts (a long turn): every request, the one behind the cap too, waited HOLD before its dial;
    that is blocked time, and connecting is the dial's own. Before: every duration ~HOLD.

    Every dial and exchange happens after the hold, so connecting, duration and waiting are
    bounded by the time from the hold's end to the last answer (``after``), not by a fixed
    HOLD / 2: a busy machine that stalls this process 0.25 s mid-dial no longer fails it,
    while a duration holding the hold still exceeds ``after`` by HOLD."""
    srv = await _server()
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    n = fast.DIALS_IN_FLIGHT + 1
    got: list[Response] = []
    try:
        for _ in range(n):
            tr.submit(Request("GET", "/fast"), got.append)
        assert len(tr._connecting) == n - 1  # the last one's dial waits for one of those to end
        time.sleep(HOLD)  # a long loop turn: no dial has started yet
        held = time.perf_counter()
        await _until(lambda: len(got) == n, "not every request was answered")
        after = time.perf_counter() - held
        bound = after * 1.01 + 1e-3  # the histogram's rounding (< 0.1 %), 1 µs units
        assert [r.status for r in got] == [200] * n
        assert min(r.blocked for r in got) > HOLD * 0.8, [(r.blocked, r.connecting) for r in got]
        assert max(r.connecting for r in got) <= after, ([r.connecting for r in got], after)
        m = _recorded(got)
        assert m["http_req_duration"] <= bound, (m, after)
        assert m["http_req_waiting"] <= bound, (m, after)
        assert m["http_req_blocked"] > HOLD * 0.8, m  # k6's name for the wait
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_aiohttp_a_wait_for_the_pool_is_blocked_not_duration() -> None:
    """aiohttp with one connection at most: /slow holds it HOLD s, a second request queues for
    it (the connector's limit) and is answered at once on it. Its duration and waiting hold
    nothing of HOLD; its blocked time is ~HOLD. Before: blocked 0, duration ~HOLD.

    Duration and waiting are bounded by the time from /slow's answer to /fast's (``after``),
    as in the fast transport's test above, not by a fixed HOLD / 2."""
    freed: list[float] = []
    srv = await _server(freed)
    tr = AiohttpTransport(_url(srv), timeout=10.0, limit=1)
    await tr.start()
    try:
        slow = asyncio.ensure_future(tr.send(Request("GET", "/slow")))
        await asyncio.sleep(0.05)  # /slow has the only connection
        resp = await tr.send(Request("GET", "/fast"))
        after = time.perf_counter() - freed[0]
        bound = after * 1.01 + 1e-3  # the histogram's rounding (< 0.1 %), 1 µs units
        assert (await slow).status == 200
        assert resp.status == 200 and resp.connecting == 0.0, resp  # /slow's, reused
        assert resp.blocked > HOLD * 0.8, resp
        m = _recorded([resp])
        assert m["http_req_duration"] <= bound, (m, after)
        assert m["http_req_waiting"] <= bound, (m, after)
        assert m["http_req_blocked"] > HOLD * 0.8, m
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_aiohttp_building_the_request_is_not_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """k6's clock starts when the built request asks for a connection (Go's getConn): aiohttp's
    own building of its request object (made to take BUILD s here) is in no phase, as a
    device's building of its request is not. Before: blocked ~BUILD (timed from the call)."""
    import aiohttp

    build = 0.2

    class SlowBuild(aiohttp.ClientRequest):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            time.sleep(build)
            super().__init__(*args, **kwargs)

    srv = await _server()
    tr = AiohttpTransport(_url(srv), timeout=10.0)
    await tr.start()
    monkeypatch.setattr(tr._ensure(), "_request_class", SlowBuild)
    try:
        called = time.perf_counter()
        resp = await tr.send(Request("GET", "/a"))
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()
    assert resp.status == 200 and resp.started > called + build * 0.9, (called, resp)
    assert resp.blocked < build / 2, resp
    m = _recorded([resp])
    assert m["http_req_blocked"] < build / 2 and m["http_req_duration"] < build / 2, m


def _transport(kind: str, url: str) -> Transport:
    return AiohttpTransport(url, timeout=10.0) if kind == "aiohttp" else FastTransport(url)


@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_phases_in_order_on_a_new_and_a_reused_connection(kind: str) -> None:
    """Both transports split a request's time the same way: a new connection's dial is
    connecting (> 0), a reused one's is 0, and the phases follow one another (started, then
    blocked, connecting, the duration up to headers and the end). Before: aiohttp's new
    connection had connecting 0 (its dial was in the duration)."""
    srv = await _server()
    tr = _transport(kind, _url(srv))
    await tr.start()
    try:
        first = await tr.send(Request("GET", "/a"))
        second = await tr.send(Request("GET", "/b"))
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()
    assert first.status == second.status == 200
    assert first.connecting > 0.0 and second.connecting == 0.0, (first, second)
    for r in (first, second):
        begin = r.started + r.blocked + r.connecting
        assert r.blocked >= 0.0 and r.started <= begin <= r.headers_at <= r.ended, r


async def _slow_connect_server(
    handlers: set[asyncio.Task[object]],
) -> tuple[asyncio.Server, socket.socket]:
    """A listener whose accept queue is full: the kernel drops a client's SYN, and its connect
    completes only on the SYN's retransmit (~1 s later: Linux's initial RTO), once the queue is
    drained. A connect slow on loopback, with no proxy or sleep in the client's path."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)  # room for one connection waiting to be accepted
    filler = socket.create_connection(sock.getsockname())  # ... taken
    srv = await asyncio.start_server(handle, sock=sock, start_serving=False)
    return srv, filler


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
async def test_a_slow_connect_is_connecting_not_duration(kind: str) -> None:
    """A connect that takes ~1 s (a dropped SYN) is connecting, on either transport: the
    duration and waiting hold none of it. Before: aiohttp's duration ~1 s, connecting 0.

    The connect completes only once the server serves (its accept queue is full until then),
    so the exchange lies between ``serving`` and the answer and the dial began before
    ``serving``: duration and waiting are bounded by the time from ``serving`` to the answer
    and blocked by the time from the call to ``serving``, not by a fixed 0.2 s that a busy
    machine's stall of this process breaks. A duration or blocked time holding the dial still
    exceeds its bound by the SYN's retransmit wait (~0.8 s)."""
    handlers: set[asyncio.Task[object]] = set()
    srv, filler = await _slow_connect_server(handlers)
    url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    tr = _transport(kind, url)
    await tr.start()
    try:
        called = time.perf_counter()
        sent = asyncio.ensure_future(tr.send(Request("GET", "/a")))
        await asyncio.sleep(0.2)  # its SYN dropped; then the queue drains
        serving = time.perf_counter()
        await srv.start_serving()
        # a loaded machine may miss the first retransmit (~1 s) and wait for the next (~3 s)
        resp = await asyncio.wait_for(sent, 30.0)
        after = time.perf_counter() - serving
    finally:
        await tr.close()
        filler.close()
        srv.close()
        await srv.wait_closed()
        await asyncio.wait(handlers, timeout=2.0)  # each sees its client's close
    bound = after * 1.01 + 1e-3  # the histogram's rounding (< 0.1 %), 1 µs units
    assert resp.status == 200, resp
    assert resp.connecting > 0.5 and resp.blocked <= serving - called, (resp, serving - called)
    m = _recorded([resp])
    assert m["http_req_connecting"] > 0.5, m
    assert m["http_req_duration"] <= bound, (m, after)
    assert m["http_req_waiting"] <= bound, (m, after)
