"""Resource samplers: the server under test, the generator itself, and a Prometheus endpoint.

Latency alone cannot say *why* a server slowed down; these samplers put CPU, memory and the
generator's own health next to every timeline tick so the stage table can name a bottleneck.

* :class:`ProcessTreeSampler` — a local server by pid, children included (gunicorn workers,
  the reference server's analysis processes): CPU %, RSS, threads, open descriptors.
* :class:`GeneratorSampler` — this process's CPU % and the event-loop lag measured by a probe
  task; a saturated generator makes every latency figure suspect (Locust warns the same way).
* :class:`PrometheusSampler` — a remote host's node_exporter, scraped on a background thread so
  a slow endpoint never stalls the schedule; one that stops answering is noted once.
* :class:`ConnectionErrorSampler` — per scenario, requests that got no HTTP answer at all
  (status 0: refused, reset, timed out) since the last tick.

CPU percentages are "% of one core", as ``top`` shows them: 200 means two cores busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import psutil

from simulator.metrics import Counter

if TYPE_CHECKING:
    from simulator.config import RunConfig
    from simulator.metrics import Registry
    from simulator.run.runner import Environment, Sampler

#: How often the loop-lag probe wakes; lag is how late each wake-up is.
LAG_PROBE_INTERVAL = 0.02


class ProcessTreeSampler:
    """CPU, memory, threads and descriptors of a process and all its descendants.

    CPU is the change in (user + system) time of every process in the tree over the wall time
    since the previous sample, so a worker that appears between two samples still counts in full.
    ``cpu_hottest`` is the busiest single process: a Python process is bound to one core by the
    GIL, so one process near 100 % is saturated even when the machine has idle cores.

    ``cpu_demand``/``cpu_demand_hottest`` (Linux) add the time the processes were runnable but
    waiting for a core (``/proc/PID/task/*/schedstat``): what they *wanted*. A CPU-bound worker
    on a host shared with other work gets only part of a core, so its CPU % says "not
    saturated" while it never waits for anything but the CPU; its demand is still ~100 %.
    """

    def __init__(self, pid: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pid = pid
        self.clock = clock
        self.root = psutil.Process(pid)
        self._prev: dict[tuple[int, float], float] = {}
        self._prev_at = clock()
        self._prev_wall = time.time()
        self._cached: dict[str, float | None] | None = None
        self._demand: dict[tuple[int, float], float] = {}
        self._prev_demand: dict[tuple[int, float], float] = {}
        self._tree_now()  # baseline so the first sample covers only its own interval

    def _tree(self) -> list[psutil.Process]:
        procs = [self.root]
        with contextlib.suppress(psutil.Error):
            procs += self.root.children(recursive=True)
        return procs

    def _tree_now(self) -> dict[tuple[int, float], tuple[psutil.Process, float]]:
        out: dict[tuple[int, float], tuple[psutil.Process, float]] = {}
        for p in self._tree():
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    key = (p.pid, p.create_time())
            except psutil.Error:
                continue
            out[key] = (p, t.user + t.system)
        self._prev = {k: v for k, (_, v) in out.items()}
        prev_demand, self._demand = self._demand, {}
        for key in out:
            d = _runnable_seconds(key[0])
            if d is not None:
                self._demand[key] = d
        self._prev_demand = prev_demand
        return out

    def alive(self) -> bool:
        """Running and not a zombie. A dead child of ours stays a zombie until reaped (psutil
        calls it running), so reap it here: a killed embedded server must read as a crash."""
        try:
            if not self.root.is_running():
                return False
            if self.root.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return False
        if self.root.pid != os.getpid():
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(self.root.pid, os.WNOHANG)  # only succeeds for our own child
        return False

    def sample(self) -> Mapping[str, float | None]:
        if not self.alive():
            return {"alive": 0.0, "cpu_percent": None, "rss_bytes": None}
        prev, prev_at, prev_wall = self._prev, self._prev_at, self._prev_wall
        now = self.clock()
        tree = self._tree_now()
        self._prev_at, self._prev_wall = now, time.time()
        dt = max(now - prev_at, 1e-6)
        busy_total = 0.0
        hottest = 0.0
        rss = threads = fds = 0
        for key, (p, cpu) in tree.items():
            # a process born since the last sample has spent all its CPU inside this interval
            base = prev.get(key, 0.0 if key[1] >= prev_wall - 0.05 else cpu)
            busy = max(cpu - base, 0.0)
            busy_total += busy
            hottest = max(hottest, busy)
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    threads += p.num_threads()
                    fds += _descriptors(p)
            except psutil.Error:
                continue
        demand_total = demand_hottest = 0.0
        for key, now_d in self._demand.items():
            want = max(
                now_d - self._prev_demand.get(key, 0.0 if key[1] >= prev_wall - 0.05 else now_d),
                0.0,
            )
            demand_total += want
            demand_hottest = max(demand_hottest, want)
        has_demand = bool(self._demand)
        return {
            "alive": 1.0,
            "cpu_percent": busy_total / dt * 100,
            "cpu_hottest": hottest / dt * 100,
            "cpu_demand": demand_total / dt * 100 if has_demand else None,
            "cpu_demand_hottest": demand_hottest / dt * 100 if has_demand else None,
            "rss_bytes": float(rss),
            "threads": float(threads),
            "open_files": float(fds),
            "processes": float(len(tree)),
            "cpu_count": float(psutil.cpu_count() or 1),
        }


def _runnable_seconds(pid: int) -> float | None:
    """Seconds every thread of ``pid`` ran or waited on a run queue (Linux schedstat), or None
    where the kernel does not say."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as fh:
                ran, waited = fh.read().split()[:2]
        except (OSError, ValueError):
            continue  # a thread that just ended
        total += int(ran) + int(waited)
    return total / 1e9


def _descriptors(p: psutil.Process) -> int:
    """Open descriptors (files and sockets): cheaper than listing ``open_files()``."""
    if hasattr(p, "num_fds"):
        return int(p.num_fds())
    return len(p.open_files())  # pragma: no cover - Windows


#: The generator is saturated above this CPU (% of one core: the event loop is one thread) …
GEN_CPU_SATURATED_PCT = 85.0
#: … or when the event loop wakes this late on average (its timestamps are late as much).
GEN_LOOP_LAG_MS = 5.0
#: With workers, a worker is also saturated when it drops this share of its iterations in a
#: tick (it could not keep its schedule) or its iterations' p99 start lag (``schedule_lag``)
#: reaches GEN_LOOP_LAG_MS: the bench's ceiling rule (< 1 % dropped, p99 start lag < 5 ms).
GEN_DROPPED_SHARE = 0.01


class GeneratorSampler:
    """This process's CPU % (and, on Linux, ``cpu_demand``: ran or waited for a core) and
    event-loop lag.

    The probe task sleeps :data:`LAG_PROBE_INTERVAL` and records how late it woke; on a loop
    busy with callbacks the lateness grows, and every request timestamp is late by as much.
    """

    def __init__(self, probe_interval: float = LAG_PROBE_INTERVAL) -> None:
        self.proc = psutil.Process()
        t = self.proc.cpu_times()
        self._cpu = t.user + t.system
        self._at = time.monotonic()
        self._demand = _runnable_seconds(os.getpid())
        self.probe_interval = probe_interval
        self._lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        loop = loop or asyncio.get_running_loop()
        self._task = loop.create_task(self._probe(), name="scfleet-lag-probe")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.probe_interval
            await asyncio.sleep(self.probe_interval)
            self._lags.append(max(loop.time() - due, 0.0))

    def sample(self) -> Mapping[str, float | None]:
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            from simulator.run.runner import SamplerDied

            raise SamplerDied(f"the loop-lag probe died ({task.exception()!r})")
        t = self.proc.cpu_times()
        cpu, now, at = t.user + t.system, time.monotonic(), self._at
        pct = (cpu - self._cpu) / max(now - at, 1e-6) * 100
        self._cpu, self._at = cpu, now
        lags, self._lags = self._lags, []
        out: dict[str, float | None] = {"cpu_percent": pct}
        demand, before = _runnable_seconds(os.getpid()), self._demand
        if demand is not None and before is not None:  # ran or waited for a core (Linux)
            out["cpu_demand"] = max(demand - before, 0.0) / max(now - at, 1e-6) * 100
        self._demand = demand
        if lags:
            out["loop_lag_ms"] = sum(lags) / len(lags) * 1000
            out["loop_lag_max_ms"] = max(lags) * 1000
        return out


class PrometheusSampler:
    """node_exporter metrics of a remote host, scraped off the event loop.

    A daemon thread fetches the endpoint every ``interval`` with a short timeout; ``sample()``
    only reads the latest parsed values, so the tick never waits on the network. CPU % is the
    machine's busy share between two scrapes (all cores, 0–100), from ``node_cpu_seconds_total``.
    """

    def __init__(
        self,
        url: str,
        *,
        interval: float = 1.0,
        timeout: float = 2.0,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.note = note or (lambda _msg: None)
        self._lock = threading.Lock()
        self._latest: dict[str, float | None] = {}
        self._prev_cpu: tuple[float, float] | None = None  # (idle seconds, total seconds)
        self._failed_once = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.died: str | None = None  # set if the scrape thread ends by an exception

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scfleet-prometheus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                self.scrape_once()
                self._stop.wait(max(self.interval - (time.monotonic() - began), 0.05))
        except BaseException as exc:  # noqa: BLE001 - reported by sample(): the run ends
            self.died = f"the scrape thread died ({exc!r})"

    def scrape_once(self) -> None:
        """Fetch and parse once; on failure the latest values are cleared (no stale data)."""
        import urllib.request  # here: a worker imports this module and never scrapes (~2 MiB)

        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:  # noqa: S310
                text = resp.read().decode("utf-8", "replace")
            values = self.parse(text)
        except Exception as exc:  # noqa: BLE001 - an endpoint going away is not fatal
            with self._lock:
                self._latest = {}
            if not self._failed_once:
                self._failed_once = True
                self.note(f"prometheus scrape of {self.url} failed: {_describe(exc)}")
            return
        with self._lock:
            self._latest = values

    def parse(self, text: str) -> dict[str, float | None]:
        from prometheus_client.parser import text_string_to_metric_families

        idle = total = 0.0
        seen_cpu = False
        avail = mem_total = None
        for fam in text_string_to_metric_families(text):
            if fam.name == "node_cpu_seconds":  # the parser drops the _total suffix
                for s in fam.samples:
                    if s.name != "node_cpu_seconds_total":
                        continue
                    seen_cpu = True
                    total += s.value
                    if s.labels.get("mode") in ("idle", "iowait"):
                        idle += s.value
            elif fam.name == "node_memory_MemAvailable_bytes" and fam.samples:
                avail = fam.samples[0].value
            elif fam.name == "node_memory_MemTotal_bytes" and fam.samples:
                mem_total = fam.samples[0].value
        out: dict[str, float | None] = {}
        if seen_cpu:
            if self._prev_cpu is not None:
                d_idle, d_total = idle - self._prev_cpu[0], total - self._prev_cpu[1]
                if d_total > 0:
                    out["cpu_percent"] = max(0.0, min(100.0, (1 - d_idle / d_total) * 100))
            self._prev_cpu = (idle, total)
        if avail is not None and mem_total:
            out["mem_available_bytes"] = avail
            out["mem_total_bytes"] = mem_total
            out["mem_used_bytes"] = mem_total - avail
            out["mem_used_percent"] = (mem_total - avail) / mem_total * 100
        return out

    def sample(self) -> Mapping[str, float | None]:
        if self.died:
            from simulator.run.runner import SamplerDied

            raise SamplerDied(f"prometheus {self.url}: {self.died}")
        with self._lock:
            return dict(self._latest)


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason if reason is not None else exc}"


class ConnectionErrorSampler:
    """Requests with no HTTP answer (status 0) per scenario since the previous tick."""

    def __init__(self, registry: Registry, scenarios: list[str]) -> None:
        self.registry = registry
        self.scenarios = scenarios
        self._seen = dict.fromkeys(scenarios, 0.0)

    def sample(self) -> Mapping[str, float | None]:
        out: dict[str, float | None] = {}
        for name in self.scenarios:
            matching = self.registry.matching("http_reqs", {"scenario": name, "status": "0"})
            total = sum(m.value for m in matching if isinstance(m, Counter))
            out[name] = total - self._seen[name]
            self._seen[name] = total
        return out


class _Throttled:
    """Re-use the last sample until ``interval`` has passed (``[monitor] interval``)."""

    def __init__(self, inner: Sampler, interval: float) -> None:
        self.inner = inner
        self.interval = interval
        self._at = -1e18
        self._last: Mapping[str, float | None] = {}

    def sample(self) -> Mapping[str, float | None]:
        now = time.monotonic()
        if now - self._at >= self.interval - 0.05:
            self._last = self.inner.sample()
            self._at = now
        return self._last


def attach(env: Environment, cfg: RunConfig, server_pid: int | None) -> None:
    """Wire every sampler that applies to this run into the environment (simulator.session calls this).

    Prefixes in the timeline: ``server.*`` (process tree), ``gen.*`` (generator),
    ``node.*`` (Prometheus), ``conn_errors.<scenario>``. Also registers the per-stage
    histogram recorder the stage table (:mod:`simulator.report.stages`) reads.
    """
    from simulator.run.stage_recorder import StageRecorder

    mon = cfg.monitor
    interval = max(mon.interval, 0.0)

    def note(msg: str) -> None:
        if msg not in env.notes:
            env.notes.append(msg)

    pid = server_pid or mon.server_pid
    if pid:
        try:
            env.add_sampler("server", _Throttled(ProcessTreeSampler(pid), interval))
        except psutil.Error as exc:
            note(f"server pid {pid} cannot be sampled: {_describe(exc)}")
    gen = GeneratorSampler()
    with contextlib.suppress(RuntimeError):  # no running loop: CPU only, no lag probe
        gen.start()
    env.add_sampler("gen", gen)
    if mon.prometheus_url:
        prom = PrometheusSampler(
            mon.prometheus_url, interval=interval, timeout=min(2.0, max(interval, 0.5)), note=note
        )
        prom.start()
        env.add_sampler("node", prom)
    env.add_sampler(
        "conn_errors", ConnectionErrorSampler(env.registry, [sc.name for sc in cfg.scenarios])
    )
    recorder = StageRecorder.for_config(cfg)
    env.interval_hooks.append(recorder.record)
    env.stage_recorder = recorder
