"""A request's wait for a connection is k6's ``http_req_blocked``, not server time: a request
that finds no idle connection waits in the fast client's queue for a freed connection or for
its (paced) dial to start, and that wait must not land in ``http_req_duration`` or
``http_req_waiting`` (k6: duration = sending + waiting + receiving). Before, ``record()``
measured from ``started + connecting``, so the queue's wait was reported as server latency.
Real servers on 127.0.0.1, recorded through the real path (``Behaviour.record``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from simulator.http import fast
from simulator.http.fast import FastTransport
from simulator.http.transport import Request, Response
from simulator.metrics import IntervalStats, Registry
from simulator.metrics.registry import TREND_SCALE
from simulator.run.devices import Behaviour, RunContext

#: how long the first request holds the only connection (s)
HOLD = 0.5


async def _server() -> asyncio.Server:
    """200 ``ok``, keep-alive; a request for ``/slow`` is answered after :data:`HOLD`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                if head.startswith(b"GET /slow"):
                    await asyncio.sleep(HOLD)
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
    its blocked time is ~HOLD. Before: http_req_duration ~HOLD (the wait)."""
    srv = await _server()
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
        resp = got[0]
        assert resp.status == 200 and resp.connecting == 0.0
        assert resp.blocked > HOLD * 0.8, resp
        m = _recorded(got)
        assert m["http_req_duration"] < HOLD / 2, m
        assert m["http_req_waiting"] < HOLD / 2, m
        assert m["http_req_blocked"] > HOLD * 0.8, m  # k6's name for the wait
    finally:
        dial_go.set()
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_a_wait_for_a_paced_dial_is_blocked_not_duration() -> None:
    """DIALS_PER_TURN + 1 requests in one turn, then the loop is held HOLD s before any dial
    starts (a long turn): every request, the paced one too, waited HOLD before its dial;
    that is blocked time, and connecting is the dial's own. Before: every duration ~HOLD."""
    srv = await _server()
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    n = fast.DIALS_PER_TURN + 1
    got: list[Response] = []
    try:
        for _ in range(n):
            tr.submit(Request("GET", "/fast"), got.append)
        assert len(tr._connecting) == n - 1  # the last one's dial is paced to the next turn
        time.sleep(HOLD)  # a long loop turn: no dial has started yet
        await _until(lambda: len(got) == n, "not every request was answered")
        assert [r.status for r in got] == [200] * n
        assert min(r.blocked for r in got) > HOLD * 0.8, [(r.blocked, r.connecting) for r in got]
        assert max(r.connecting for r in got) < HOLD / 2, [r.connecting for r in got]
        m = _recorded(got)
        assert m["http_req_duration"] < HOLD / 2, m
        assert m["http_req_waiting"] < HOLD / 2, m
        assert m["http_req_blocked"] > HOLD * 0.8, m  # k6's name for the wait
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()
