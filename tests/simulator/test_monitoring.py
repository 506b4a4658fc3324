"""Resource samplers against real processes and a real Prometheus text endpoint on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest

from simulator.metrics import Registry
from simulator.run.monitoring import (
    ConnectionErrorSampler,
    GeneratorSampler,
    ProcessTreeSampler,
    PrometheusSampler,
)

# A parent that starts a busy grandchild, then allocates 200 MB when told to on stdin.
TREE = r"""
import subprocess, sys, time
busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
print("ready", busy.pid, flush=True)
sys.stdin.readline()
blob = bytearray(200 * 1024 * 1024)
for i in range(0, len(blob), 4096):
    blob[i] = 1
print("allocated", flush=True)
sys.stdin.readline()
busy.kill()
"""


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().split()
    assert ready[0] == "ready"
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(ready[1]), signal.SIGKILL)  # the busy grandchild, not ours to orphan


def _cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


@pytest.mark.slow  # a busy child process, ~1 s: the fast tier stays under 60 s
def test_busy_child_shows_as_cpu_and_allocation_as_rss(tree: subprocess.Popen[str]) -> None:
    (busy,) = psutil.Process(tree.pid).children()
    sampler = ProcessTreeSampler(tree.pid)
    cpu0, t0 = _cpu_seconds(busy), time.monotonic()
    time.sleep(0.8)
    s = sampler.sample()
    own = (_cpu_seconds(busy) - cpu0) / (time.monotonic() - t0) * 100
    assert s["alive"] == 1.0
    assert s["processes"] == 2  # the parent and its busy child
    # the busy loop is a grandchild of nothing we sampled directly: it counts via children.
    # How much CPU it gets depends on what else the host runs, so the sampler is held to the
    # child's own accounting over the same interval, and to its demand (ran or waited for a
    # core), which a busy loop keeps near 100 % on any host.
    assert s["cpu_hottest"] is not None and s["cpu_hottest"] > 0
    assert s["cpu_hottest"] == pytest.approx(own, abs=15)
    assert s["cpu_percent"] is not None and s["cpu_percent"] >= s["cpu_hottest"]
    assert s["cpu_demand_hottest"] is not None and s["cpu_demand_hottest"] > 80
    assert s["threads"] is not None and s["threads"] >= 2
    assert s["open_files"] is not None and s["open_files"] >= 3
    before = s["rss_bytes"]
    assert before is not None
    assert tree.stdin is not None and tree.stdout is not None
    tree.stdin.write("go\n")
    tree.stdin.flush()
    assert tree.stdout.readline().startswith("allocated")
    after = sampler.sample()["rss_bytes"]
    assert after is not None and after - before > 150e6


def test_idle_process_shows_little_cpu_and_a_dead_one_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = ProcessTreeSampler(proc.pid)
        time.sleep(0.5)
        s = sampler.sample()
        assert s["cpu_percent"] is not None and s["cpu_percent"] < 20
        assert s["processes"] == 1
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert sampler.sample()["alive"] == 0.0


async def test_generator_sees_its_own_cpu_and_loop_lag() -> None:
    gen = GeneratorSampler(probe_interval=0.01)
    gen.start()
    await asyncio.sleep(0.1)
    gen.sample()  # start a fresh interval
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(0.05)
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # block the loop: the probe cannot wake
        pass
    await asyncio.sleep(0.03)
    s = gen.sample()
    own = (time.process_time() - cpu0) / (time.monotonic() - t0) * 100
    gen.stop()
    assert s["loop_lag_max_ms"] is not None and s["loop_lag_max_ms"] > 200
    # the share of a core the spin got depends on the host; what it wanted does not
    assert s["cpu_percent"] is not None and s["cpu_percent"] == pytest.approx(own, abs=15)
    assert s["cpu_demand"] is not None and s["cpu_demand"] > 50  # 0.3 s of ~0.38 s spinning


def _oversleep_ms(stop: threading.Event, out: list[float]) -> None:
    """How late a plain thread wakes from 10 ms sleeps: the host's own scheduling delay."""
    while not stop.is_set():
        t = time.perf_counter()
        time.sleep(0.01)
        out.append((time.perf_counter() - t - 0.01) * 1000)


def test_generator_lag_is_small_on_an_idle_loop() -> None:
    async def main() -> dict[str, float | None]:
        gen = GeneratorSampler(probe_interval=0.01)
        gen.start()
        await asyncio.sleep(0.3)
        gen.sample()
        await asyncio.sleep(0.3)
        out = dict(gen.sample())
        gen.stop()
        return out

    stop, host = threading.Event(), []
    watcher = threading.Thread(target=_oversleep_ms, args=(stop, host))
    watcher.start()
    try:
        s = asyncio.run(main())
    finally:
        stop.set()
        watcher.join()
    # an idle loop wakes as promptly as a sleeping thread does on this host, busy or not
    baseline = sum(host) / len(host)
    assert s["loop_lag_ms"] is not None and s["loop_lag_ms"] < 5 + 2 * baseline
    assert s["cpu_percent"] is not None and s["cpu_percent"] < 50


# --------------------------------------------------------------------------- Prometheus


def node_exporter_text(idle: float, busy: float, avail: float, total: float) -> str:
    return f"""# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{{cpu="0",mode="idle"}} {idle / 2}
node_cpu_seconds_total{{cpu="0",mode="user"}} {busy / 2}
node_cpu_seconds_total{{cpu="0",mode="iowait"}} 0
node_cpu_seconds_total{{cpu="1",mode="idle"}} {idle / 2}
node_cpu_seconds_total{{cpu="1",mode="system"}} {busy / 2}
# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes {avail:e}
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes {total:e}
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
"""


class Exporter:
    """node_exporter stand-in on 127.0.0.1:0; each scrape advances the counters."""

    def __init__(self) -> None:
        self.scrapes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                n = outer.scrapes
                outer.scrapes += 1
                # per scrape: 1 s idle and 3 s busy (over two CPUs) → 75 % busy
                body = node_exporter_text(100 + n, 50 + 3 * n, 3e9 - n * 1e8, 8e9).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        # a short poll: close() waits for it (0.5 s by default)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_scrape_of_a_real_endpoint_then_it_stops_answering() -> None:
    exporter = Exporter()
    notes: list[str] = []
    prom = PrometheusSampler(exporter.url, timeout=1.0, note=notes.append)
    try:
        prom.scrape_once()
        first = prom.sample()
        assert "cpu_percent" not in first  # a rate needs two scrapes
        assert first["mem_total_bytes"] == 8e9
        prom.scrape_once()
        s = prom.sample()
        assert s["cpu_percent"] == pytest.approx(75.0)
        assert s["mem_available_bytes"] == pytest.approx(2.9e9)
        assert s["mem_used_percent"] == pytest.approx((8e9 - 2.9e9) / 8e9 * 100)
    finally:
        exporter.close()
    prom.scrape_once()
    prom.scrape_once()
    assert prom.sample() == {}  # no stale values once it stops answering
    assert len(notes) == 1 and exporter.url in notes[0]


def test_a_hanging_endpoint_never_stalls_sample() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"
    notes: list[str] = []
    prom = PrometheusSampler(url, interval=0.2, timeout=0.3, note=notes.append)
    prom.start()
    try:
        began = time.perf_counter()
        for _ in range(20):
            assert prom.sample() == {}
        assert time.perf_counter() - began < 0.05
        deadline = time.monotonic() + 3
        while not notes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(notes) == 1 and "failed" in notes[0]
    finally:
        prom.stop()
        listener.close()


def test_background_thread_keeps_the_latest_values() -> None:
    exporter = Exporter()
    prom = PrometheusSampler(exporter.url, interval=0.1, timeout=1.0)
    prom.start()
    try:
        deadline = time.monotonic() + 3
        while "cpu_percent" not in prom.sample() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert prom.sample()["cpu_percent"] == pytest.approx(75.0)
    finally:
        prom.stop()
        exporter.close()


def test_connection_errors_are_counted_per_tick() -> None:
    reg = Registry()
    reg.get("http_reqs", (("scenario", "a"), ("status", "0"))).value += 3
    reg.get("http_reqs", (("scenario", "a"), ("status", "200"))).value += 10
    sampler = ConnectionErrorSampler(reg, ["a", "b"])
    assert sampler.sample() == {"a": 3, "b": 0}
    reg.get("http_reqs", (("scenario", "a"), ("status", "0"))).value += 2
    assert sampler.sample() == {"a": 2, "b": 0}


async def test_attach_wires_every_sampler_and_the_stage_recorder() -> None:
    from types import SimpleNamespace

    from simulator.config import parse_config
    from simulator.report.stages import StageRecorder
    from simulator.run.monitoring import attach

    exporter = Exporter()
    cfg = parse_config(
        {
            "scenarios": {"a": {"executor": "constant-vus", "vus": 1, "duration": "2s"}},
            "monitor": {"prometheus_url": exporter.url, "interval": "1s"},
        }
    )
    samplers: list[tuple[str, Any]] = []
    env = SimpleNamespace(
        add_sampler=lambda prefix, s: samplers.append((prefix, s)),
        notes=[],
        registry=Registry(),
        interval_hooks=[],
        stage_recorder=None,
    )
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        attach(env, cfg, proc.pid)
        assert [p for p, _ in samplers] == ["server", "gen", "node", "conn_errors"]
        assert isinstance(env.stage_recorder, StageRecorder)
        assert env.interval_hooks == [env.stage_recorder.record]
        await asyncio.sleep(0.3)
        by = dict(samplers)
        assert by["server"].sample()["alive"] == 1.0
        assert "loop_lag_ms" in by["gen"].sample()
        deadline = time.monotonic() + 3
        while "mem_total_bytes" not in by["node"].sample() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert by["node"].sample()["mem_total_bytes"] == 8e9
        by["node"].stop()
        by["gen"].stop()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        exporter.close()
    # a pid that does not exist is a note, not a failure
    env.notes.clear()
    samplers.clear()
    attach(
        env,
        parse_config({"scenarios": {"a": {"executor": "constant-vus", "duration": "1s"}}}),
        proc.pid,
    )
    assert [p for p, _ in samplers] == ["gen", "conn_errors"]
    dict(samplers)["gen"].stop()
    assert env.notes and str(proc.pid) in env.notes[0]


def test_a_killed_child_is_dead_not_a_zombie_and_gets_reaped() -> None:
    """A dead child stays a zombie until reaped and psutil calls a zombie running: the
    sampler must say dead (so the stage table says crash) and reap it."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = ProcessTreeSampler(proc.pid)
        assert sampler.sample()["alive"] == 1.0
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert sampler.sample()["alive"] == 0.0
        assert not psutil.pid_exists(proc.pid)  # reaped: no zombie left behind
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
