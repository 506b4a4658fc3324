"""``[run] warm_connections``: 0 (the default) dials on demand, as k6 does; "auto" opens a
process's keep-alive connections before its schedule starts: as many as its
open-model scenarios pre-allocate devices (k6's preAllocatedVUs: the requests expected in
flight at once). Before, the pool started empty: the first arrivals each waited for a paced
dial (~150 µs of CPU each, 1 KB to nginx), the loop's turns grew, more arrivals came due at
once and needed more connections — 500-1,400 per ``auto`` worker in the first 0.5 s at
11,000-12,000/s, starts up to 120 ms late, where ~50 connections serve the rate after. Real
servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from raw_http import serving

from scfleet import api
from simulator.config import RunConfig
from simulator.http import fast
from simulator.http.fast import FastTransport
from simulator.http.transport import Request, Response
from simulator.run.devices import MAX_WARM, warm_connections
from simulator.run.limits import MARGIN, files_needed
from simulator.run.workers import segment_config

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _server(accepted: list[int]) -> asyncio.Server:
    """200 ``ok`` to every request, keep-alive; ``accepted`` counts the connections."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(_OK)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_start_opens_the_warm_connections_and_requests_reuse_them() -> None:
    """``warm=8``: start() returns with 8 connections open; 8 requests submitted in one turn
    then dial nothing (connecting 0, no ninth connection)."""
    accepted: list[int] = []
    srv = await _server(accepted)
    port = srv.sockets[0].getsockname()[1]
    tr = FastTransport(f"http://127.0.0.1:{port}", timeout=10.0, warm=8)
    got: list[Response] = []
    try:
        await tr.start()
        assert tr.connects == 8 and len(tr._idle) == 8
        for _ in range(8):
            tr.submit(Request("GET", "/x"), got.append)
        assert not tr._connecting  # every request found an open connection
        for _ in range(500):
            if len(got) == 8:
                break
            await asyncio.sleep(0.01)
        assert [r.status for r in got] == [200] * 8
        assert [r.connecting for r in got] == [0.0] * 8
        assert tr.connects == 8 and len(accepted) == 8
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_a_dial_ahead_serves_a_request_already_waiting() -> None:
    """A request that comes while dials ahead are under way waits for one of them: no
    dial of its own."""
    accepted: list[int] = []
    srv = await _server(accepted)
    port = srv.sockets[0].getsockname()[1]
    tr = FastTransport(f"http://127.0.0.1:{port}", timeout=10.0)
    got: list[Response] = []
    try:
        await tr.start()  # warm 0: nothing opened, nothing waited for
        assert tr.connects == 0
        tr.dial_ahead(4)
        tr.submit(Request("GET", "/x"), got.append)
        assert len(tr._connecting) == 4  # the request waits for a dial ahead, none of its own
        for _ in range(500):
            if got and len(tr._connecting) == 0:
                break
            await asyncio.sleep(0.01)
        assert [r.status for r in got] == [200]
        assert tr.connects == 4
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_start_waits_for_warm_connections_at_most_warm_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A target whose listen backlog is full drops the connects (SYNs unanswered): start()
    returns after WARM_WAIT, not after the connect timeout (30 s), the dials still under way.
    Before the bound: start() waited for every dial to time out."""
    monkeypatch.setattr(fast, "WARM_WAIT", 0.3)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)  # never accepted: one queued connect fills it, the rest hang
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            fillers.append(c)
        tr = FastTransport(f"http://127.0.0.1:{port}", timeout=10.0, warm=8)
        t0 = time.perf_counter()
        await tr.start()
        took = time.perf_counter() - t0
        assert 0.25 < took < 3.0
        assert tr._connecting  # still dialling: they serve whatever request waits first
        await tr.close()
    finally:
        for c in fillers:
            c.close()
        lsock.close()


async def test_a_second_start_opens_and_waits_for_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker starts its transport on the Warm word, then its run starts it again after the
    go: that second start must not dial the missing connections again nor wait WARM_WAIT for
    the dials still under way (it did: the go's start came WARM_WAIT late, a burst after)."""
    monkeypatch.setattr(fast, "WARM_WAIT", 0.3)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            fillers.append(c)
        tr = FastTransport(f"http://127.0.0.1:{port}", timeout=10.0, warm=8)
        await tr.start()
        dialling = len(tr._connecting)
        t0 = time.perf_counter()
        await tr.start()
        assert time.perf_counter() - t0 < 0.15
        assert len(tr._connecting) == dialling  # nothing dialled twice
        await tr.close()
    finally:
        for c in fillers:
            c.close()
        lsock.close()


_TOML = """
[run]
warm_connections = {warm}
[scenarios.up]
executor = "constant-arrival-rate"
rate = 100
duration = "1s"
pre_allocated_devices = {pre}
max_devices = {most}
[scenarios.up.device]
chunk_bytes = 200
keep_alive = {keep}
[audio]
profiles = 1
seconds = 1
"""


def _cfg(tmp_path: Path, *, pre: int = 12, keep: str = "true", warm: str = '"auto"') -> RunConfig:
    cfg_file = tmp_path / "w.toml"
    cfg_file.write_text(_TOML.format(pre=pre, keep=keep, warm=warm, most=40))
    return api.load(cfg_file)


def test_auto_warm_connections_follow_the_pre_allocated_devices(tmp_path: Path) -> None:
    assert warm_connections(_cfg(tmp_path, pre=12)) == 12
    assert warm_connections(_cfg(tmp_path, pre=12, keep="false")) == 0  # a connection a request
    cfg_file = tmp_path / "w.toml"
    cfg_file.write_text(
        _TOML.format(pre=5000, keep="true", warm='"auto"', most=40).replace("max_devices = 40", "")
    )
    assert warm_connections(api.load(cfg_file)) == min(100, MAX_WARM)  # its 100 iterations


def test_warm_connections_default_to_none_and_take_a_count(tmp_path: Path) -> None:
    """The default opens nothing ahead (k6's on-demand dialling: the server sees only what the
    schedule needs); N opens N, and the open-file limit counts them beyond the requests in
    flight (40 devices here); with workers N is the run's, each worker opening its share."""
    cfg_file = tmp_path / "d.toml"
    cfg_file.write_text(_TOML.format(pre=12, keep="true", warm=0, most=40).split("\n", 3)[3])
    default = api.load(cfg_file)
    assert default.run.warm_connections == 0 and warm_connections(default) == 0
    assert warm_connections(_cfg(tmp_path, warm="7")) == 7
    assert warm_connections(_cfg(tmp_path, warm="500")) == 500
    assert files_needed(_cfg(tmp_path, warm="500")) == 500 + MARGIN
    assert files_needed(_cfg(tmp_path, warm="500"), workers=2) == 250 + MARGIN
    five = _cfg(tmp_path, warm="5")
    shares = [warm_connections(segment_config(five, k, 3)) for k in range(3)]
    assert shares == [2, 2, 1]
    auto = _cfg(tmp_path, pre=12)  # auto: each worker its segment's pre-allocated devices
    assert sum(warm_connections(segment_config(auto, k, 2)) for k in range(2)) == 12


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0
    at_first_request = 0  # connections accepted when the first request came
    lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        with _Counting.lock:
            _Counting.connections += 1

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        with _Counting.lock:
            _Counting.at_first_request = _Counting.at_first_request or _Counting.connections
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[str]:
    _Counting.connections = _Counting.at_first_request = 0
    with serving(_Counting) as url:
        yield url


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_auto_dials_nothing_after_its_start(
    tmp_path: Path, counting_server: str, workers: int
) -> None:
    """``warm_connections = "auto"``, one process or two workers (5 devices each, opened
    before the go), 100 arrivals/s for 1 s with 10 devices: the 10 connections are open
    before the start, so no request waits for a connect (``http_req_connecting`` max 0), the
    server sees those 10 and the run's reachability check, and the summary says 10 were
    opened ahead. Before 4ce4015: the first request dialled (its connecting > 0).
    ``max_devices`` is the 10: with 40, a server slowed by a loaded machine had more than 10
    requests in flight and the run rightly dialled for them (12-14 connections, flaky);
    iterations it could not start then are dropped, and counted."""
    cfg_file = tmp_path / "w.toml"
    cfg_file.write_text(_TOML.format(pre=10, keep="true", warm='"auto"', most=10))
    outcome = api.run(
        api.load(cfg_file), target=counting_server, out=tmp_path / "run", workers=workers
    )
    assert outcome.exit_code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics = summary["metrics"]
    dropped = metrics.get("dropped_iterations", {}).get("count", 0)
    assert metrics["http_reqs"]["count"] + dropped == 100 and metrics["http_reqs"]["count"] > 0
    assert metrics["http_req_connecting"]["max"] == 0
    assert _Counting.connections == 10 + 1  # session.check_reachable's
    assert summary["scfleet"]["options"]["warmConnections"] == 10
    text = (tmp_path / "run" / "summary.txt").read_text()
    assert "connections opened before the start: 10 ([run] warm_connections" in text


def test_the_default_dials_on_demand(
    tmp_path: Path, counting_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``[run] warm_connections``: nothing is opened before the start, as in k6 — the
    first request dials (its ``http_req_connecting`` > 0), the transport has opened or begun
    no connection when the first request is submitted (not the 10 pre-allocated devices'),
    and the summary says nothing was opened ahead. Before (4ce4015's default): 10 + 1
    connections before the first request. Counted in the transport, not at the server: the
    server's count when the first request reached it also held the dials of the arrivals
    that came while a loaded machine delayed it (flaky)."""
    at_first: list[int] = []
    real_submit = FastTransport.submit

    def submit(self: FastTransport, req: Request, done: Any) -> None:
        if not at_first:
            at_first.append(self.connects + len(self._connecting))
        real_submit(self, req, done)

    monkeypatch.setattr(FastTransport, "submit", submit)
    cfg_file = tmp_path / "w.toml"
    cfg_file.write_text(_TOML.format(pre=10, keep="true", warm=0, most=40).split("\n", 3)[3])
    outcome = api.run(api.load(cfg_file), target=counting_server, out=tmp_path / "run", workers=1)
    assert outcome.exit_code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics = summary["metrics"]
    dropped = metrics.get("dropped_iterations", {}).get("count", 0)  # a server slowed by load
    assert metrics["http_reqs"]["count"] + dropped == 100 and metrics["http_reqs"]["count"] > 0
    assert metrics["http_req_connecting"]["max"] > 0
    assert at_first == [0]  # nothing opened nor being opened before the first request
    assert summary["scfleet"]["options"]["warmConnections"] == 0
    assert "opened before the start" not in (tmp_path / "run" / "summary.txt").read_text()
