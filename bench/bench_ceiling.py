"""Ceiling per generator against nginx on loopback: scfleet (1 worker, auto workers) and k6.

The *ceiling* is the highest constant arrival rate at which a run of ``--step`` seconds passes
all of (issue 12):

* delivered ≥ 99 %: successful requests (``http_reqs`` × (1 − ``http_req_failed``)) over the
  iterations scheduled (rate × duration);
* dropped < 1 %: ``dropped_iterations`` over the iterations scheduled;
* start lag p99 < 5 ms: scfleet's ``summary.json`` → ``scfleet.start_accuracy.p99_ms``
  (actual − scheduled start). k6 has no start-lag metric: plain ``k6`` is judged on the first
  two only; ``--k6-lag`` adds ``k6-lag``, k6 with a probe (:class:`ProbeLag`) judged on all
  three as scfleet is, and the table gives every ceiling ÷ each k6 yardstick.

Each generator is searched coarse-to-fine: the rate doubles from ``--start`` until a step fails,
then the bracket is bisected (geometric middle) until it is within ``--resolution``. A prior
ceiling (``--prior FILE``, a JSON this script wrote) narrows the search to ±25 % around it.
Then each generator runs at 1.5× its ceiling and the achieved rate is reported as a fraction
of the ceiling (goal ≥ 95 %: no collapse) twice: over the whole run (successful requests ÷ the
seconds the run took, the summary's rate) and *steady*, nginx's requests a second in the
schedule's middle (:func:`steady_rate`: the first second, every device's first connect, and
the tail past the schedule left out, alike for k6 and scfleet).

CPU per request (user+sys of the generator's process tree, from ``wait4()``, which includes
the worker processes the coordinator reaped) is measured for 1 worker and auto workers at the
same rate (each of ``--cpu-rates``), minus a 1 req/s run of the same length, interleaved over
``--repeat`` runs (goal: auto within 5 % of 1 worker). A third run, 1 worker at the rate ÷ the
auto worker count (each auto worker's share) with an auto worker's arrival quantum (it wakes
for its arrivals at most once per N ms, as each of N local workers does), splits the
difference: running the load as smaller parts (fewer requests per wake-up of an event loop)
against coordinating (auto against that share: the snapshots, the coordinator). Each of these
runs also reads a steady window (:class:`TreeWindow`, :func:`steady_us`): each process's CPU
from ``CPU_WINDOW_FROM_S`` after the start to the schedule's end per request nginx took, minus
the 1 req/s runs' per second, the coordinator and the workers apart. A fourth run,
:meth:`Bench.run_together`, starts N share runs at once: auto's workers without the
coordinator, side by side as they are (the share run alone leaves the other core idle).

nginx (bench/nginx_target.py: 2 workers, reads and discards the body, answers 200) is sampled
each step: its CPU share is reported beside each ceiling to show it was not the bottleneck.

    python bench/bench_ceiling.py [--bodies 32000,1024] [--generators w1,auto,k6]
        [--step 10] [--repeat 1] [--json out.json] [--prior out.json] [--cluster ADDRESS]
        [--k6-lag] [--cpu-rates 4000,8000] [--warm 0|auto|N]

``--warm`` is scfleet's ``[run] warm_connections`` in every scfleet run: 0 (the default, as
scfleet's own default) dials on demand as k6 does, which cannot open connections before its
start; ``auto`` opens each process's pre-allocated devices' connections ahead (fewer late
starts in the first second at 11,000-12,000/s, README Benchmarks). The table names the setting
beside every scfleet figure.

``--cluster ADDRESS`` adds the generator ``cluster`` (scfleet ``--cluster ADDRESS``, Ray
actors; only where that option exists); ``--cluster local`` starts a two-node Ray cluster on
loopback for it (tests/scfleet/raycluster.py: one CPU per node, stopped by its PIDs). Load goes to 127.0.0.1 only; every step is bounded by
--step seconds plus a 5 s graceful stop, every search by --max-steps.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nginx_target import Nginx, raise_nofile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

DELIVERED_MIN = 0.99
DROPPED_MAX = 0.01
LAG_P99_MAX_MS = 5.0
#: A step that failed while the hypervisor took at least this much of one vCPU is run once
#: more, whatever the generator: on this VM a vCPU is taken for exactly 100 ms about six times
#: a minute when the host is busy, and one such stall puts a 10 s step's p99 start lag at
#: 10-60 ms (k6's and scfleet's alike); the table counts the re-runs.
STEAL_RERUN_MS = 50.0


@dataclass(frozen=True)
class PoolMs:
    """The device pool (k6 ``preAllocatedVUs``/``maxVUs``, scfleet ``pre_allocated_devices``/
    ``max_devices``) as milliseconds of arrivals, the same for every generator (``--pool-ms``).
    Against nginx answering in 1-3 ms, 250 ms of arrivals lets a saturated generator hold
    thousands of requests in flight, which adds connections and kernel work, not throughput;
    k6's docs size maxVUs as rate × iteration time plus a margin. The floors (64, 256 devices,
    kept from the fixed sizing) act only at low rates (below 1,280/s and 1,024/s with 50,250;
    6,400/s and 5,120/s with 10,50), where a few ms of arrivals would be a handful of devices
    and one stall of the loop or the hypervisor would drop iterations."""

    pre: float = 50.0
    max: float = 250.0

    PRE_FLOOR = 64
    MAX_FLOOR = 256

    @classmethod
    def parse(cls, text: str) -> PoolMs:
        """``PRE,MAX`` in ms, 0 < PRE ≤ MAX; one-line error naming the option otherwise."""
        parts = text.split(",")
        try:
            pre, mx = (float(p) for p in parts)
        except ValueError:
            raise SystemExit(f"--pool-ms: expected PRE,MAX milliseconds, got {text!r}") from None
        if not (0 < pre <= mx and math.isfinite(mx)):
            raise SystemExit(f"--pool-ms: expected 0 < PRE <= MAX, got {text!r}")
        return cls(pre, mx)

    def devices(self, rate: float) -> tuple[int, int]:
        """Pre-allocated and max devices (k6 VUs) at a rate: PRE and MAX ms of its arrivals."""
        return (
            max(self.PRE_FLOOR, math.ceil(rate * self.pre / 1000)),
            max(self.MAX_FLOOR, math.ceil(rate * self.max / 1000)),
        )

    def __str__(self) -> str:
        return f"{self.pre:g},{self.max:g}"


#: today's sizing: 50 ms of arrivals pre-allocated, up to 250 ms
DEFAULT_POOL = PoolMs()


def steal_ms() -> list[float]:
    """Each vCPU's time taken by the hypervisor so far (/proc/stat ``steal``), in ms; empty
    where the kernel does not say."""
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return []
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    out = []
    for line in text.splitlines():
        f = line.split()
        if f and f[0].startswith("cpu") and f[0] != "cpu" and len(f) > 8:
            out.append(int(f[8]) * tick_ms)
    return out


def most_stolen(before: list[float], after: list[float]) -> float:
    """The most any one vCPU lost to the hypervisor between two :func:`steal_ms` readings."""
    return max((a - b for a, b in zip(after, before, strict=False)), default=0.0)


#: ``[run]`` of the scfleet config, only when ``--warm`` is not 0: a commit from before the key
#: (an A/B as PYTHONPATH) refuses an unknown ``[run]`` key, and 0 was its behaviour then
SCFLEET_WARM = """
[run]
warm_connections = {warm}
"""
SCFLEET_TOML = """
[scenarios.iot_upload]
executor = "constant-arrival-rate"
rate = {rate}
time_unit = "1s"
duration = "{duration}s"
pre_allocated_devices = {pre}
max_devices = {max}
graceful_stop = "5s"
[scenarios.iot_upload.device]
chunk_bytes = {body}
[audio]
profiles = 4
seconds = 5
"""

K6_SCRIPT = """
import http from 'k6/http';
import {{ check }} from 'k6';
{probe_import}
const body = open('{body}', 'b');
export const options = {{
  scenarios: {{
    iot_upload: {{
      executor: 'constant-arrival-rate', rate: {rate}, timeUnit: '1s', duration: '{duration}s',
      preAllocatedVUs: {pre}, maxVUs: {max}, gracefulStop: '5s',
    }},
  }},
}};
export default function () {{
  {probe}
  const headers = {{
    'Content-Type': 'application/octet-stream',
    'X-Device-ID': `test-device-${{__VU}}`,
    'X-Sample-Rate': '16000',
  }};
  {probe_header}
  const res = http.post('{url}/api/esp32/audio/upload', body, {{ headers }});
  check(res, {{ 'is status 200': (r) => r.status === 200 }});
}}
"""

# The start-lag probe (--k6-lag): first thing in the iteration, the time, then the iteration's
# counter (k6 gives one to each iteration that starts, in start order; a dropped one gets none)
# and the ms since the scenario started, sent as a header that nginx logs (nginx_target.py).
# `exec.scenario` builds a new object on each access: it is read once.
K6_PROBE_IMPORT = "import exec from 'k6/execution';"
K6_PROBE = (
    "const now = Date.now(), sc = exec.scenario; "
    "const probe = `${sc.iterationInTest} ${now - sc.startTime}`;"
)
K6_PROBE_HEADER = "headers['X-Lag-Probe'] = probe;"

GENERATORS = ("w1", "auto", "k6", "k6-lag", "k6-probe", "cluster")
LABELS = {
    "w1": "scfleet --workers 1",
    "auto": "scfleet --workers auto",
    "k6": "k6 (delivered, dropped)",
    "k6-lag": "k6 + lag probe (all three)",
    "k6-probe": "k6 + lag probe (delivered, dropped)",
    "cluster": "scfleet --cluster (Ray)",
}
K6_GENERATORS = ("k6", "k6-lag", "k6-probe")


@dataclass(frozen=True)
class ProbeLag:
    """k6's start lag (actual − scheduled start) from the probe's lines, in ms.

    A constant-arrival-rate scenario schedules slot g at ``g × period`` after the scenario's
    start (``period`` = 1 s ÷ rate, in whole ns, lib/executor/constant_arrival_rate.go). An
    iteration's counter c is not its slot: a dropped slot gets no counter, so g = c + D, D the
    slots dropped before it, which k6 does not tell the script. Bounds on D give bounds on the
    lag: D ≥ 0 gives ``p99_hi_ms`` (every iteration's lag over-stated by D periods); D can be
    no more than any later iteration's ``floor(t / period) − c`` (a slot is not started before
    its time) nor the run's ``dropped_iterations``, which gives ``p99_ms``, the lower bound.
    With no drop the two are the same and exact, to the probe's resolution: ±1 ms (``Date.now()``
    and ``exec.scenario.startTime`` are whole ms). Only iterations whose request reached nginx
    are counted (``n``).
    """

    n: int
    p99_ms: float
    p99_hi_ms: float
    max_ms: float
    malformed: int = 0

    @property
    def exact(self) -> bool:
        return self.p99_ms == self.p99_hi_ms


#: The 1.5× runs' steady rate leaves out the schedule's first and last this many seconds.
STEADY_EDGE_S = 1.0


def steady_rate(samples: list[tuple[float, int]], duration: float) -> float | None:
    """Requests a second nginx took in the middle of a run's schedule, from ``(time, requests
    so far)`` samples: from its first request + :data:`STEADY_EDGE_S` to the schedule's end −
    :data:`STEADY_EDGE_S`. The run's own rate (requests ÷ the whole run) also holds its first
    second (every device's first connect: 8–11k/s of a 15k/s steady rate at 21,000/s) and the
    tail after the schedule, the drain of the requests in flight (before 9037cb6 and 8a62900,
    past the ceiling scfleet also started arrivals up to ``MAX_LATE`` late after the end, and
    a --workers run's duration held the workers' closing: 0.5–1.1 s in all at 1.5×): 10 %
    under the steady rate at 1.5× then, 1 % at 1.0×. None: too few samples, or no request."""
    if len(samples) < 2 or duration <= 2 * STEADY_EDGE_S:
        return None
    base = samples[0][1]
    go = next((t for t, n in samples if n > base), None)
    if go is None:
        return None

    def at(when: float) -> float | None:
        for (t0, n0), (t1, n1) in itertools.pairwise(samples):
            if t0 <= when <= t1:
                return n0 + (n1 - n0) * (when - t0) / (t1 - t0) if t1 > t0 else float(n1)
        return None

    a, b = go + STEADY_EDGE_S, go + duration - STEADY_EDGE_S
    na, nb = at(a), at(b)
    return (nb - na) / (b - a) if na is not None and nb is not None else None


class ServedSampler:
    """nginx's request counter every ``every`` s in a thread while a run goes (the 1.5× runs:
    :func:`steady_rate`); a read that fails is skipped."""

    def __init__(self, nginx: Nginx, every: float = 0.1) -> None:
        import threading

        self.nginx = nginx
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.samples.append((time.perf_counter(), self.nginx.served()))
            self._stop.wait(self.every)

    def __enter__(self) -> ServedSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


#: CPU runs' steady window: from this many seconds after the generator starts (start-up done,
#: the schedule running) to the schedule's end (--step s after the start), so that start-up and
#: shutdown, whose CPU varies by tenths of a second a process, stay out of it.
CPU_WINDOW_FROM_S = 3.0


@dataclass
class Window:
    """What a run spent between two instants of its schedule: CPU (user+sys) of the process
    tree's root (the coordinator; with ``--workers 1`` the one process) and of its other
    processes (the workers), and the requests nginx took meanwhile."""

    seconds: float
    coordinator_s: float
    workers_s: float
    served: int

    @property
    def cpu_s(self) -> float:
        return self.coordinator_s + self.workers_s


class TreeWindow:
    """Reads a generator's process tree (psutil) and nginx's request count twice, in a thread:
    ``start`` and ``end`` seconds after :meth:`begin`. Only processes seen at both reads count
    (a worker that exits between them is left out and the window too: None)."""

    def __init__(self, nginx: Nginx, start: float, end: float) -> None:
        import threading

        self.nginx, self.start, self.end = nginx, start, end
        self.window: Window | None = None
        self._pids: tuple[int, ...] = ()
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def begin(self, *pids: int) -> None:
        """Read the trees of ``pids`` (one run, or copies run together: each root a
        "coordinator", a one-process run's only process)."""
        self._pids, self._t0 = pids, time.perf_counter()
        if self.end > self.start:
            self._thread.start()

    def _read(self) -> tuple[float, int, dict[int, float]] | None:
        import psutil

        try:
            procs = []
            for pid in self._pids:
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
            cpu = {}
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
            return time.perf_counter(), self.nginx.served(), cpu
        except (psutil.Error, OSError, ValueError, IndexError):
            return None

    def _run(self) -> None:
        if self._stop.wait(max(self._t0 + self.start - time.perf_counter(), 0)):
            return
        a = self._read()
        if a is None or self._stop.wait(max(self._t0 + self.end - time.perf_counter(), 0)):
            return
        b = self._read()
        if b is not None:
            self.window = window_between(self._pids, a, b)

    def close(self) -> Window | None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        return self.window


def window_between(
    roots: tuple[int, ...],
    a: tuple[float, int, dict[int, float]],
    b: tuple[float, int, dict[int, float]],
) -> Window | None:
    """The :class:`Window` between two reads ``(time, nginx's count, {pid: CPU s})``; None if
    a process of either read is missing from the other (it started or ended in between)."""
    (ta, na, ca), (tb, nb, cb) = a, b
    if set(ca) != set(cb) or not set(roots) <= set(ca):
        return None
    coord = sum(cb[p] - ca[p] for p in roots)
    workers = sum(cb[p] - ca[p] for p in ca if p not in roots)
    return Window(seconds=tb - ta, coordinator_s=coord, workers_s=workers, served=nb - na)


def steady_us(run: Window, base: list[Window], copies: int = 1) -> dict[str, float]:
    """CPU per request in a steady window, minus what the 1 req/s runs spent per second in
    theirs (median, part by part; × ``copies`` for runs side by side): the whole tree, its
    coordinator and its workers, in µs."""

    def per_s(part: str, w: Window) -> float:
        return float(getattr(w, part)) / w.seconds

    reqs_s = run.served / run.seconds
    out = {}
    for key, part in (
        ("tree", "cpu_s"),
        ("coordinator", "coordinator_s"),
        ("workers", "workers_s"),
    ):
        idle = statistics.median(per_s(part, w) for w in base) * copies if base else 0.0
        out[key] = (per_s(part, run) - idle) / max(reqs_s, 1e-9) * 1e6
    return out


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    if not values:
        return 0.0
    v = sorted(values)
    return v[max(math.ceil(0.99 * len(v)) - 1, 0)]


def probe_lag(lines: list[str], rate: float, dropped: int) -> ProbeLag | None:
    """Start lag of one k6 run from its ``X-Lag-Probe`` lines (``"<counter> <ms>"``)."""
    period = int(1e9 / rate) / 1e6  # ms, as k6 truncates it to whole ns
    pairs: list[tuple[int, int]] = []
    malformed = 0
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].lstrip("-").isdigit():
            pairs.append((int(parts[0]), int(parts[1])))
        else:
            malformed += 1
    if not pairs:
        return None
    pairs.sort()
    hi = [t - c * period for c, t in pairs]
    # D ≤ min over this and every later iteration of (the last slot due by its t) − c; the
    # truncated ms put the true t below t + 1
    lo: list[float] = [0.0] * len(pairs)
    bound = max(dropped, 0)
    for i in range(len(pairs) - 1, -1, -1):
        c, t = pairs[i]
        bound = min(bound, max(math.ceil((t + 1) / period) - 1 - c, 0))
        lo[i] = t - (c + bound) * period
    return ProbeLag(
        n=len(pairs),
        p99_ms=round(p99(lo), 3),
        p99_hi_ms=round(p99(hi), 3),
        max_ms=round(max(lo), 3),
        malformed=malformed,
    )


_RUNS = itertools.count()


@dataclass
class Step:
    """One bounded run of one generator at one rate."""

    generator: str
    body: int
    rate: float
    duration: float
    scheduled: int
    requests: int
    ok: int
    dropped: int
    lag_p99_ms: float | None
    cpu_s: float  # user+sys of the generator's process tree
    wall_s: float
    nginx_cpu_s: float
    nginx_busiest_worker_s: float
    load1: float
    passed: bool = False
    why: str = ""
    reqs_rate: float | None = None  # http_reqs rate of the summary: count / the run's duration
    lag_p99_hi_ms: float | None = None  # k6's probe: the upper bound (ProbeLag); lag_p99_ms low
    probe_n: int | None = None  # k6's probe: iterations it timed
    steal_ms: float = 0.0  # the most one vCPU lost to the hypervisor during the run
    rerun: bool = False  # it failed with steal_ms >= STEAL_RERUN_MS and was run again
    steady_rate: float | None = None  # nginx's requests a second, schedule's middle (1.5× runs)
    window: Window | None = None  # CPU runs: the steady window (TreeWindow), if it was read

    @property
    def delivered(self) -> float:
        return self.ok / self.scheduled if self.scheduled else 0.0

    @property
    def achieved(self) -> float:
        """Successful requests per second the run took (the summary's http_reqs rate: a run
        that fell behind takes longer than its schedule); per second of schedule if unknown."""
        if self.reqs_rate:
            return self.reqs_rate * (self.ok / max(self.requests, 1))
        return self.ok / self.duration

    def judge(self, lag: bool = True) -> Step:
        reasons = []
        if self.delivered < DELIVERED_MIN:
            reasons.append(f"delivered {self.delivered:.1%}")
        if self.dropped / max(self.scheduled, 1) >= DROPPED_MAX:
            reasons.append(f"dropped {self.dropped / max(self.scheduled, 1):.1%}")
        if lag and self.lag_p99_ms is None:
            reasons.append("no start lag measured")
        elif lag and self.lag_p99_ms is not None and self.lag_p99_ms >= LAG_P99_MAX_MS:
            reasons.append(f"lag p99 {self.lag_p99_ms:.1f} ms")
        self.passed = not reasons
        self.why = ", ".join(reasons) or "ok"
        return self


@dataclass
class Search:
    generator: str
    body: int
    ceiling: float = 0.0
    steps: list[Step] = field(default_factory=list)
    overload: Step | None = None
    complete: bool = True  # False: cut by --max-steps/--deadline, the ceiling is a lower bound
    #: scfleet's ``[run] warm_connections`` (--warm); "" for k6, which cannot pre-dial;
    #: "unrecorded" in a JSON from before the option
    warm: str = ""
    #: the device pool's sizing (--pool-ms, :class:`PoolMs`), every generator alike;
    #: "unrecorded" in a JSON from before the option
    pool_ms: str = str(DEFAULT_POOL)

    @property
    def at_ceiling(self) -> Step | None:
        return next((s for s in self.steps if s.passed and s.rate == self.ceiling), None)


class Bench:
    def __init__(self, args: argparse.Namespace, nginx: Nginx, tmp: Path) -> None:
        self.args = args
        self.nginx = nginx
        self.tmp = tmp
        self.bodies: dict[int, Path] = {}
        self.env: dict[str, str] | None = None  # the Ray cluster's environment, if any

    def body_file(self, size: int) -> Path:
        if size not in self.bodies:
            p = self.tmp / f"body-{size}.raw"
            p.write_bytes(os.urandom(size))
            self.bodies[size] = p
        return self.bodies[size]

    @staticmethod
    def devices(rate: float, pool: PoolMs = DEFAULT_POOL) -> tuple[int, int]:
        """Devices (k6 VUs) for a rate: ``pool`` (default 50 ms of arrivals pre-allocated, up
        to 250 ms; bench_procs.py sizes its runs with it too)."""
        return pool.devices(rate)

    @property
    def pool(self) -> PoolMs:
        """``--pool-ms`` (the default for a Namespace made without it, as in the tests)."""
        pool = getattr(self.args, "pool_ms", DEFAULT_POOL)
        return pool if isinstance(pool, PoolMs) else DEFAULT_POOL

    def generator_env(self, quantum_of: int = 0) -> dict[str, str]:
        """The generator's environment: the Ray cluster's, if any; ``quantum_of`` N > 1 makes a
        one-process run wake for its arrivals as a local worker of N does
        (``simulator.executors.runtime.QUANTUM_OF_ENV``)."""
        from simulator.executors.runtime import QUANTUM_OF_ENV

        env = dict(self.env if self.env is not None else os.environ)
        env.pop(QUANTUM_OF_ENV, None)
        if quantum_of > 1:
            env[QUANTUM_OF_ENV] = str(quantum_of)
        return env

    def run(
        self,
        gen: str,
        body: int,
        rate: float,
        duration: float | None = None,
        *,
        quantum_of: int = 0,
        steady: bool = False,
        window: bool = False,
    ) -> Step:
        """One bounded run; ``quantum_of``: a ``w1`` run with the arrival quantum of a
        worker of that many (:meth:`generator_env`); ``steady``: also nginx's rate in the
        schedule's middle (:func:`steady_rate`, the 1.5× runs); ``window``: also the CPU of
        each process of the tree in the schedule's steady part (:class:`TreeWindow`)."""
        d = self.args.step if duration is None else duration
        pre, mx = self.devices(rate, self.pool)
        n = next(_RUNS)
        probe = gen in ("k6-lag", "k6-probe")
        if gen in K6_GENERATORS:
            script = self.tmp / f"k6-{n}.js"
            script.write_text(
                K6_SCRIPT.format(
                    probe_import=K6_PROBE_IMPORT if probe else "",
                    probe=K6_PROBE if probe else "",
                    probe_header=K6_PROBE_HEADER if probe else "",
                    body=self.body_file(body),
                    rate=rate,
                    duration=d,
                    pre=pre,
                    max=mx,
                    url=self.nginx.url,
                )
            )
            export = self.tmp / f"k6-{n}.json"
            k6 = shutil.which("k6") or str(Path(sys.executable).parent / "k6")
            cmd = [
                k6,
                "run",
                "--quiet",
                "--no-usage-report",
                "--summary-export",
                str(export),
                str(script),
            ]
        else:
            cfg = self.tmp / f"sc-{n}.toml"
            cfg.write_text(scfleet_config(rate, d, body, self.args.warm, self.pool))
            export = self.tmp / f"sc-run-{n}"
            scfleet = shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet")
            cmd = [
                scfleet,
                "run",
                str(cfg),
                "--target",
                self.nginx.url,
                "--out",
                str(export),
                "--quiet",
            ]
            if gen == "w1":
                cmd += ["--workers", "1"]
            elif gen == "auto":
                cmd += ["--workers", "auto"]
            elif gen == "cluster":
                cmd += ["--cluster", self.args.cluster, "--workers", "auto"]  # 1 per CPU
        if probe:
            self.nginx.take_probe_log()  # nothing left from an earlier run
        before = self.nginx.cpu()
        stolen = steal_ms()
        t0 = time.perf_counter()
        err_file = self.tmp / f"stderr-{n}.txt"
        served = ServedSampler(self.nginx) if steady else contextlib.nullcontext()
        tree = TreeWindow(self.nginx, CPU_WINDOW_FROM_S, d if window else 0.0)
        with served:
            with err_file.open("wb") as err_fh:
                proc = subprocess.Popen(
                    cmd,
                    cwd=self.tmp,
                    stdout=subprocess.DEVNULL,
                    stderr=err_fh,
                    preexec_fn=raise_nofile,
                    env=self.generator_env(quantum_of),
                )
            tree.begin(proc.pid)
            deadline_s = d + 120  # start-up, graceful stop, summary: bounded
            try:
                _, status, ru = _wait4(proc.pid, deadline_s)
            except TimeoutError:
                proc.kill()
                proc.wait()
                raise SystemExit(
                    f"{gen} at {rate:g}/s did not finish within {deadline_s:g}s"
                ) from None
        wall = time.perf_counter() - t0
        steady_window = tree.close()
        stolen_ms = most_stolen(stolen, steal_ms())
        after = self.nginx.cpu()
        code = os.waitstatus_to_exitcode(status)
        err = err_file.read_text(errors="replace")
        if code not in (0, 99):
            raise SystemExit(f"{gen} at {rate:g}/s exited {code}: {err.strip()[-400:]}")
        lag_hi: float | None = None
        probe_n: int | None = None
        if gen in K6_GENERATORS:
            m = json.loads(export.read_text())["metrics"]
            lag = None
            if probe:
                dropped = int(m.get("dropped_iterations", {}).get("count", 0))
                failed_share = float(m.get("http_req_failed", {}).get("value", 0.0))
                answered = round(int(m["http_reqs"]["count"]) * (1 - failed_share))
                pl = probe_lag(self.nginx.take_probe_log(expect=answered), rate, dropped)
                if pl is not None:
                    lag, lag_hi, probe_n = pl.p99_ms, pl.p99_hi_ms, pl.n
        else:
            doc = json.loads((export / "summary.json").read_text())
            m = doc["metrics"]
            lag = doc["scfleet"]["start_accuracy"]["p99_ms"]
            shutil.rmtree(export, ignore_errors=True)
        reqs = int(m["http_reqs"]["count"])
        failed = float(m.get("http_req_failed", {}).get("value", 0.0))
        busiest = max(
            (a - b for a, b in zip(after.per_worker, before.per_worker, strict=False)), default=0.0
        )
        step = Step(
            generator=gen,
            body=body,
            rate=rate,
            duration=d,
            scheduled=round(rate * d),
            requests=reqs,
            ok=round(reqs * (1 - failed)),
            dropped=int(m.get("dropped_iterations", {}).get("count", 0)),
            lag_p99_ms=lag,
            cpu_s=ru.ru_utime + ru.ru_stime,
            wall_s=wall,
            nginx_cpu_s=after.total - before.total,
            nginx_busiest_worker_s=busiest,
            load1=os.getloadavg()[0],
            reqs_rate=float(m["http_reqs"].get("rate") or 0.0) or None,
            lag_p99_hi_ms=lag_hi,
            probe_n=probe_n,
            steal_ms=stolen_ms,
            steady_rate=steady_rate(served.samples, d)
            if isinstance(served, ServedSampler)
            else None,
            window=steady_window,
        ).judge(lag=judged_by_lag(gen, self.args.no_lag))
        lag_s = f"{lag:.2f} ms" if lag is not None else "n/a"
        if lag_hi is not None and lag_hi != lag:
            lag_s += f" (≤ {lag_hi:.2f}: drops)"
        print(
            f"  {LABELS[gen]:<24} {body:>6} B {rate:>8.0f}/s: ok {step.ok}/{step.scheduled} "
            f"dropped {step.dropped} lag p99 {lag_s} cpu {step.cpu_s:.1f}s nginx "
            f"{step.nginx_cpu_s / d:.2f} cores"
            + (f" steal {step.steal_ms:.0f} ms" if step.steal_ms else "")
            + (
                f" achieved {step.achieved:.0f}/s, steady {step.steady_rate:.0f}/s"
                if step.steady_rate
                else ""
            )
            + f" → {step.why}",
            flush=True,
        )
        return step

    def run_together(self, body: int, rate: float, copies: int, duration: float) -> Step:
        """``copies`` one-process runs (``--workers 1``) started together, each at ``rate`` ÷
        ``copies`` with the arrival quantum of a worker of ``copies``: auto's workers without
        the coordinator, side by side on the machine as they are (the share run alone leaves
        the other core idle). CPU, requests and the steady window are their sums."""
        d, part = duration, nice(rate / copies)
        pre, mx = self.devices(part, self.pool)
        n = next(_RUNS)
        cfg = self.tmp / f"sc-{n}.toml"
        cfg.write_text(scfleet_config(part, d, body, self.args.warm, self.pool))
        scfleet = shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet")
        exports = [self.tmp / f"sc-run-{n}-{i}" for i in range(copies)]
        tree = TreeWindow(self.nginx, CPU_WINDOW_FROM_S, d)
        procs = []
        err_file = self.tmp / f"stderr-{n}.txt"
        with err_file.open("wb") as err_fh:
            for export in exports:
                cmd = [scfleet, "run", str(cfg), "--target", self.nginx.url, "--out", str(export)]
                procs.append(
                    subprocess.Popen(
                        [*cmd, "--quiet", "--workers", "1"],
                        cwd=self.tmp,
                        stdout=subprocess.DEVNULL,
                        stderr=err_fh,
                        preexec_fn=raise_nofile,
                        env=self.generator_env(copies),
                    )
                )
        tree.begin(*(p.pid for p in procs))
        cpu, reqs, dropped, lags, failed = 0.0, 0, 0, [], 0.0
        for proc, export in zip(procs, exports, strict=True):
            try:
                _, status, ru = _wait4(proc.pid, d + 120)
            except TimeoutError:
                for q in procs:
                    q.kill()
                raise SystemExit(
                    f"copies at {part:g}/s did not finish within {d + 120:g}s"
                ) from None
            code = os.waitstatus_to_exitcode(status)
            if code not in (0, 99):
                err = err_file.read_text(errors="replace").strip()[-400:]
                raise SystemExit(f"a copy at {part:g}/s exited {code}: {err}")
            cpu += ru.ru_utime + ru.ru_stime
            doc = json.loads((export / "summary.json").read_text())
            m = doc["metrics"]
            c = int(m["http_reqs"]["count"])
            reqs += c
            failed += c * float(m.get("http_req_failed", {}).get("value", 0.0))
            dropped += int(m.get("dropped_iterations", {}).get("count", 0))
            lags.append(doc["scfleet"]["start_accuracy"]["p99_ms"])
            shutil.rmtree(export, ignore_errors=True)
        step = Step(
            generator="w1",
            body=body,
            rate=part * copies,
            duration=d,
            scheduled=round(part * d) * copies,
            requests=reqs,
            ok=round(reqs - failed),
            dropped=dropped,
            lag_p99_ms=max(lags),
            cpu_s=cpu,
            wall_s=0.0,
            nginx_cpu_s=0.0,
            nginx_busiest_worker_s=0.0,
            load1=os.getloadavg()[0],
            window=tree.close(),
        ).judge()
        print(
            f"  {copies} × scfleet --workers 1 {body:>6} B {part:>8.0f}/s each, together: ok "
            f"{step.ok}/{step.scheduled} dropped {dropped} lag p99 {max(lags):.2f} ms cpu "
            f"{cpu:.1f}s → {step.why}",
            flush=True,
        )
        return step

    def search(self, gen: str, body: int, prior: float | None) -> Search:
        s = Search(gen, body, warm=warm_of(gen, self.args.warm), pool_ms=str(self.pool))
        res = self.args.resolution
        steps = 0

        def probe(rate: float) -> bool:
            nonlocal steps
            steps += 1
            if steps > self.args.max_steps or late(self.args):
                raise _Budget
            st = self.run(gen, body, rate)
            s.steps.append(st)
            if not st.passed and st.steal_ms >= STEAL_RERUN_MS and not late(self.args):
                st.rerun = True  # the hypervisor's stall, not the generator's: once more
                print(f"    (the hypervisor took {st.steal_ms:.0f} ms of a vCPU: run again)")
                st = self.run(gen, body, rate)
                s.steps.append(st)
            return st.passed

        try:
            # coarse: from the prior (steps of 1.25×) or --start (2×), up until a step fails,
            # or down until one passes; then fine: bisect the bracket
            factor = 1.25 if prior else 2.0
            r = nice(prior or self.args.start)
            lo, hi = 0.0, 0.0
            if probe(r):
                lo = r
                while not hi:
                    r = nice(lo * factor)
                    if probe(r):
                        lo = r
                    else:
                        hi = r
            else:
                hi = r
                while not lo and hi > 10:
                    r = nice(hi / factor)
                    if probe(r):
                        lo = r
                    else:
                        hi = r
            while lo and hi and hi / lo > 1 + res:
                mid = nice(math.sqrt(lo * hi))
                if mid in (lo, hi):
                    break
                if probe(mid):
                    lo = mid
                else:
                    hi = mid
        except _Budget:
            s.complete = False
            print(f"  ({gen} {body} B: --max-steps {self.args.max_steps} or --deadline reached)")
        s.ceiling = max((st.rate for st in s.steps if st.passed), default=0.0)
        if s.ceiling and not self.args.no_overload and not late(self.args):
            s.overload = self.run(gen, body, nice(s.ceiling * 1.5), steady=True)
        return s

    def cpu_per_request(self, body: int, rate: float) -> dict[str, object]:
        """1 worker vs auto workers at the same rate, minus a 1 req/s run, interleaved; and 1
        worker at the rate ÷ the auto worker count with an auto worker's arrival quantum
        (``w1_part``: what each auto worker runs, as it runs it), so the difference splits
        into running the rate in smaller parts (fewer requests per wake-up of each event
        loop) and coordinating (auto against that part, per request). Without the quantum
        the share run woke twice as often as an auto worker: the split meant nothing."""
        d, n = self.args.step, max(self.args.repeat, 1)
        parts = len(os.sched_getaffinity(0))  # what `--workers auto` starts here
        out: dict[str, object] = {
            "rate": rate,
            "body": body,
            "duration": d,
            "workers": parts,
            "warm": self.args.warm,
        }
        idle: dict[str, list[Window]] = {}
        for gen in ("w1", "auto"):
            base = [self.run(gen, body, 1, d, window=True) for _ in range(n)]
            out[f"{gen}_baseline_cpu_s"] = statistics.median(b.cpu_s for b in base)
            out[f"{gen}_baseline_requests"] = statistics.median(b.requests for b in base)
            idle[gen] = [b.window for b in base if b.window is not None]
        # (key, generator, rate, quantum of): the share run wakes for its arrivals as each
        # auto worker does (its arrival quantum), so the two differ only by coordination
        runs = [("w1", "w1", rate, 0), ("auto", "auto", rate, 0)]
        if parts > 1:
            runs.append(("w1_part", "w1", nice(rate / parts), parts))
            out["w1_part_quantum_of"] = parts
            # auto's workers without the coordinator: N share runs side by side
            runs.append(("w1_together", "w1", rate, parts))
        per: dict[str, list[float]] = {key: [] for key, *_ in runs}
        raw: dict[str, list[float]] = {key: [] for key, *_ in runs}
        steady: dict[str, list[dict[str, float]]] = {key: [] for key, *_ in runs}
        for _ in range(n):
            for key, gen, r, q in runs:
                st = (
                    self.run_together(body, r, q, d)
                    if key == "w1_together"
                    else self.run(gen, body, r, d, quantum_of=q, window=True)
                )
                b, b_reqs = out[f"{gen}_baseline_cpu_s"], out[f"{gen}_baseline_requests"]
                assert isinstance(b, float) and isinstance(b_reqs, (int, float))
                copies = q if key == "w1_together" else 1  # N copies idle as N runs do
                b, b_reqs = b * copies, b_reqs * copies
                per[key].append((st.cpu_s - b) / max(st.requests - b_reqs, 1) * 1e6)
                raw[key].append(st.cpu_s / max(st.requests, 1) * 1e6)
                if st.window is not None and st.window.served:
                    steady[key].append(steady_us(st.window, idle[gen], copies))
        for key in per:
            out[f"{key}_us"] = sorted(per[key])
            out[f"{key}_raw_us"] = sorted(raw[key])
            for part in ("tree", "coordinator", "workers"):
                if steady[key]:
                    out[f"{key}_steady_{part}_us"] = sorted(x[part] for x in steady[key])
        w1, auto = statistics.median(per["w1"]), statistics.median(per["auto"])
        out["overhead"] = auto / w1 - 1
        part = ""
        if per.get("w1_together"):
            tog = statistics.median(per["w1_together"])
            out["overhead_vs_together"] = auto / tog - 1
        if per.get("w1_part"):
            w1p = statistics.median(per["w1_part"])
            out["overhead_vs_part"] = auto / w1p - 1
            part = (
                f"; 1 worker at {nice(rate / parts):g}/s {w1p:.1f} µs: the smaller part "
                f"{w1p / w1 - 1:+.1%}, coordination {auto / w1p - 1:+.1%}"
            )
        print(
            f"  CPU per request at {rate:g}/s, {body} B: 1 worker {w1:.1f} µs, auto {auto:.1f} µs "
            f"({auto / w1 - 1:+.1%}){part}",
            flush=True,
        )
        for line in steady_lines(out):
            print(f"  {line}", flush=True)
        return out


def steady_lines(c: dict[str, object]) -> list[str]:
    """The CPU case's steady-window figures (:func:`steady_us`), process by process; none for
    a JSON from before them."""

    def med(key: str) -> float | None:
        xs = c.get(key)
        return statistics.median(xs) if isinstance(xs, list) and xs else None

    def rng(key: str) -> str:
        xs = c.get(key)
        assert isinstance(xs, list)
        return f"{statistics.median(xs):.1f} µs ({min(xs):.1f}–{max(xs):.1f})"

    w1, auto = med("w1_steady_tree_us"), med("auto_steady_tree_us")
    if w1 is None or auto is None:
        return []
    lines = [
        f"Steady window ({CPU_WINDOW_FROM_S:g} s after the start to the schedule's end, "
        f"nginx's requests, minus a 1 req/s run's window): 1 worker {rng('w1_steady_tree_us')}, "
        f"auto {rng('auto_steady_tree_us')}: **{auto / w1 - 1:+.1%}**; auto's coordinator "
        f"{rng('auto_steady_coordinator_us')}, its workers {rng('auto_steady_workers_us')}"
    ]
    part = med("w1_part_steady_tree_us")
    workers = med("auto_steady_workers_us")
    coord = med("auto_steady_coordinator_us")
    if part is not None and workers is not None and coord is not None:
        lines.append(
            f"Steady, 1 worker at each auto worker's share {rng('w1_part_steady_tree_us')}: "
            f"running smaller parts {part / w1 - 1:+.1%}; coordination: in the coordinator "
            f"{coord / w1:+.1%} of 1 worker's, in the workers (auto's workers vs that share) "
            f"{workers / part - 1:+.1%}"
        )
    tog = med("w1_together_steady_tree_us")
    if tog is not None:
        lines.append(
            f"Steady, {c.get('workers', 2)} one-process runs at the share side by side (auto "
            f"without its coordinator) {rng('w1_together_steady_tree_us')}: against 1 worker "
            f"{tog / w1 - 1:+.1%}; auto against them (coordination) **{auto / tog - 1:+.1%}**"
        )
    return lines


def cpu_cases(args: argparse.Namespace) -> list[tuple[int, float]]:
    """(body, rate) of each CPU-per-request measurement: every --cpu-bodies × --cpu-rates."""
    return [
        (int(b), float(r)) for b in args.cpu_bodies.split(",") for r in args.cpu_rates.split(",")
    ]


def judged_by_lag(gen: str, no_lag: bool) -> bool:
    """Is this generator's step judged on start lag too? scfleet unless --no-lag; k6 only with
    the probe as ``k6-lag`` (plain ``k6`` and ``k6-probe`` on delivered and dropped)."""
    if gen in K6_GENERATORS:
        return gen == "k6-lag"
    return not no_lag


def nice(rate: float) -> float:
    """A rate rounded to two significant digits."""
    mag = 10 ** max(math.floor(math.log10(rate)) - 1, 0)
    return float(max(round(rate / mag) * mag, 1))


class _Budget(Exception):
    pass


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: the generator is killed and nginx stopped by PID."""
    raise SystemExit(128 + signum)


def late(args: argparse.Namespace) -> bool:
    """Past --deadline (UTC HH:MM)?"""
    return bool(args.deadline) and time.strftime("%H:%M", time.gmtime()) >= args.deadline


def _wait4(pid: int, timeout: float) -> tuple[int, int, resource.struct_rusage]:
    """os.wait4 with a deadline (polled with WNOHANG)."""
    deadline = time.monotonic() + timeout
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return wpid, status, ru
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)


def table(results: list[list[Search]], cpu: list[dict[str, object]], quiet: bool) -> str:
    """The markdown table: median ceiling (range over repeats), overload, and the ratio to each
    k6 yardstick: delivered and dropped only (``k6``), all three with the probe's lag (``k6-lag``)."""
    by: dict[tuple[str, int, str, str], list[Search]] = {}
    for rep in results:
        for s in rep:
            by.setdefault((s.generator, s.body, s.warm, s.pool_ms), []).append(s)
    pools = sorted({pool for *_, pool in by})

    def k6_median(gen: str, body: int, pool: str) -> float:
        """k6's ceiling with the same device pool: a ratio across sizings is not like for like."""
        runs = by.get((gen, body, "", pool))
        return statistics.median(s.ceiling for s in runs) if runs else 0.0

    lines = [
        "Device pool, every generator alike (k6 preAllocatedVUs/maxVUs, scfleet "
        "pre_allocated_devices/max_devices; --pool-ms PRE,MAX ms of arrivals, floors "
        f"{PoolMs.PRE_FLOOR}/{PoolMs.MAX_FLOOR}): "
        + (pool_words(pools[0]) if len(pools) == 1 else "by row"),
        "",
        "| body | generator | ceiling (median, range) | at the ceiling: lag p99 · nginx cores "
        "| at 1.5×: achieved (whole run; steady: the schedule's middle) / ceiling | ÷ k6 (delivered, dropped) | ÷ k6 (all three, lag probe) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    ambiguous = 0
    for (gen, body, warm, pool), runs in sorted(
        by.items(), key=lambda kv: (-kv[0][1], GENERATORS.index(kv[0][0]), kv[0][2], kv[0][3])
    ):
        ceilings = sorted(s.ceiling for s in runs)
        med = statistics.median(ceilings)
        ratios = []
        for k6 in ("k6", "k6-lag"):
            k6_med = k6_median(k6, body, pool)
            ratios.append(f"{med / k6_med:.2f}×" if k6_med else "n/a")
        spread = f"{ceilings[0]:,.0f}–{ceilings[-1]:,.0f}" if len(ceilings) > 1 else "1 run"
        if not all(s.complete for s in runs):
            spread += "; a search was cut short: ≥"
        none = [s for s in runs if not s.ceiling and s.steps]
        if none:  # every step failed: the ceiling is below the lowest rate tried
            lowest = min(st.rate for s in none for st in s.steps)
            spread += f"; {len(none)} of {len(runs)} runs: no step passed, down to {lowest:,.0f}/s"
        at = [s.at_ceiling for s in runs if s.at_ceiling]
        lags = [a.lag_p99_ms for a in at if a.lag_p99_ms is not None]
        lag = (
            f"{statistics.median(lags):.2f} ms"
            if lags
            else ("n/a (no probe)" if gen == "k6" else "–")
        )
        his = [a.lag_p99_hi_ms for a in at if a.lag_p99_hi_ms is not None]
        if his and lags and statistics.median(his) != statistics.median(lags):
            lag += f" (≤ {statistics.median(his):.2f})"
        ambiguous += sum(
            1
            for s in runs
            for st in s.steps
            if gen == "k6-lag"
            and st.passed
            and st.lag_p99_hi_ms is not None
            and st.lag_p99_hi_ms >= LAG_P99_MAX_MS
        )
        ng = statistics.median(a.nginx_cpu_s / a.duration for a in at) if at else 0.0
        busiest = (
            statistics.median(a.nginx_busiest_worker_s / a.duration for a in at) if at else 0.0
        )
        over = [s.overload.achieved / s.ceiling for s in runs if s.overload and s.ceiling]
        over_s = (
            f"{statistics.median(over):.0%}"
            + (f" ({min(over):.0%}–{max(over):.0%})" if len(over) > 1 else "")
            if over
            else "n/a"
        )
        steady = [
            s.overload.steady_rate / s.ceiling
            for s in runs
            if s.overload and s.overload.steady_rate and s.ceiling
        ]
        if steady:  # the schedule's middle, by nginx's counter (steady_rate)
            over_s += f"; steady {statistics.median(steady):.0%}" + (
                f" ({min(steady):.0%}–{max(steady):.0%})" if len(steady) > 1 else ""
            )
        lines.append(
            f"| {body:,} B | {label(gen, warm)}"
            + (f", pool {pool} ms" if len(pools) > 1 else "")
            + f" | {med:,.0f}/s ({spread}) | {lag} · {ng:.2f} "
            f"(busiest worker {busiest:.0%}) "
            f"| {over_s} | {ratios[0]} | {ratios[1]} |"
        )
    if any(g in ("k6-lag", "k6-probe") for g, *_ in by):
        lines.append("")
        lines.append(
            "k6's start lag is the probe's (actual − scheduled start per iteration, ±1 ms); with "
            "drops in a step it is bounded, the lower bound judged (k6 gets the benefit of the "
            "doubt), the upper shown as (≤ …). Passing k6-lag steps whose upper bound was ≥ "
            f"{LAG_P99_MAX_MS:g} ms: {ambiguous}."
        )
    reruns: dict[str, int] = {}
    for (gen, *_), runs in sorted(by.items(), key=lambda kv: GENERATORS.index(kv[0][0])):
        reruns[gen] = reruns.get(gen, 0) + sum(st.rerun for s in runs for st in s.steps)
    lines.append("")
    lines.append(
        "Failed steps run again because the hypervisor took ≥ "
        f"{STEAL_RERUN_MS:g} ms of a vCPU during them (any generator, once): "
        + (", ".join(f"{LABELS[g]} {n}" for g, n in reruns.items() if n) or "none")
        + "."
    )
    for c in cpu:
        w1, auto = c["w1_us"], c["auto_us"]
        assert isinstance(w1, list) and isinstance(auto, list)
        lines.append("")
        lines.append(
            f"CPU per request at {c['rate']:,}/s, {c['body']:,} B, scfleet warm "
            f"{c.get('warm', 'unrecorded')} (minus a 1 req/s run): 1 worker "
            f"{statistics.median(w1):.1f} µs ({min(w1):.1f}–{max(w1):.1f}), auto "
            f"{statistics.median(auto):.1f} µs ({min(auto):.1f}–{max(auto):.1f}): "
            f"**{c['overhead']:+.1%}** (goal ≤ +5 %)"
        )
        part = c.get("w1_part_us")
        if isinstance(part, list) and part:
            med = statistics.median(part)
            how = (
                "with its arrival quantum"
                if c.get("w1_part_quantum_of")
                else "without its arrival quantum: the split is not like for like"
            )
            lines.append(
                f"1 worker at {c['rate'] / int(str(c.get('workers', 2))):,.0f}/s (each auto "
                f"worker's share, {how}): {med:.1f} µs ({min(part):.1f}–{max(part):.1f}): running "
                f"smaller parts {med / statistics.median(w1) - 1:+.1%}, coordination (auto vs "
                f"that) {statistics.median(auto) / med - 1:+.1%}"
            )
        tog = c.get("w1_together_us")
        if isinstance(tog, list) and tog:
            med = statistics.median(tog)
            lines.append(
                f"{c.get('workers', 2)} one-process runs at that share side by side (auto's "
                f"workers without the coordinator): {med:.1f} µs ({min(tog):.1f}–{max(tog):.1f}): "
                f"against 1 worker {med / statistics.median(w1) - 1:+.1%}, coordination (auto vs "
                f"them) **{statistics.median(auto) / med - 1:+.1%}**"
            )
        lines += steady_lines(c)
    by_rate: dict[int, list[str]] = {}
    for c in cpu:
        by_rate.setdefault(int(str(c["body"])), []).append(
            f"{float(str(c['rate'])):,.0f}/s {float(str(c['overhead'])):+.1%}"
        )
    for body, parts in by_rate.items():
        if len(parts) > 1:
            lines.append(
                f"auto's CPU per request against 1 worker, {body:,} B, by rate: " + ", ".join(parts)
            )
    lines.append("")
    lines.append(
        "scfleet's warm N: `[run] warm_connections` (--warm): 0 dials on demand as k6 does (k6 "
        "cannot open connections before its start); auto opens each process's pre-allocated "
        "devices' connections before the start."
    )
    lines.append(f"Machine: {'quiet' if quiet else 'BUSY (other jobs running)'}.")
    return "\n".join(lines)


def scfleet_config(
    rate: float, duration: float, body: int, warm: str, pool: PoolMs = DEFAULT_POOL
) -> str:
    """The scfleet run's config at a rate: its devices (``pool``, :meth:`Bench.devices`) and,
    unless 0, ``[run] warm_connections`` (0 is the default: a commit from before the key runs it
    too)."""
    pre, mx = Bench.devices(rate, pool)
    toml = SCFLEET_TOML.format(rate=rate, duration=duration, pre=pre, max=mx, body=body)
    return toml if warm == "0" else SCFLEET_WARM.format(warm=warm_value(warm)) + toml


def pool_words(pool: str) -> str:
    """A recorded ``--pool-ms`` in words for the table's header."""
    if pool == "unrecorded":
        return "unrecorded (a JSON from before --pool-ms: 50 ms pre-allocated, up to 250 ms)"
    pre, _, mx = pool.partition(",")
    return f"{pre} ms of arrivals pre-allocated, up to {mx} ms (--pool-ms {pool})"


def warm_value(warm: str) -> str:
    """``--warm`` as the TOML value of ``[run] warm_connections``."""
    return '"auto"' if warm == "auto" else str(int(warm))


def warm_of(gen: str, warm: str) -> str:
    """The warm setting a generator's search ran with: k6 has none."""
    return "" if gen in K6_GENERATORS else warm


def label(gen: str, warm: str) -> str:
    """A table row's generator, with scfleet's warm setting (every scfleet figure names it)."""
    return f"{LABELS[gen]}, warm {warm}" if warm else LABELS[gen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bodies", default="32000,1024", help="body sizes in bytes")
    ap.add_argument("--generators", default="w1,auto,k6", help=f"of {','.join(GENERATORS)}")
    ap.add_argument("--step", type=float, default=10.0, help="seconds per step")
    ap.add_argument("--start", type=float, default=2000.0, help="first rate of a search")
    ap.add_argument("--resolution", type=float, default=0.1, help="stop bisecting at hi/lo")
    ap.add_argument("--max-steps", type=int, default=12, help="steps per search, at most")
    ap.add_argument("--repeat", type=int, default=1, help="searches per generator")
    ap.add_argument(
        "--cpu-rates",
        "--cpu-rate",
        dest="cpu_rates",
        default="4000",
        help="rates for CPU per request, comma-separated (e.g. 4000,8000): auto's overhead by rate",
    )
    ap.add_argument("--cpu-bodies", default="32000", help="bodies for CPU per request")
    ap.add_argument("--no-cpu", action="store_true", help="skip CPU per request (1 vs auto)")
    ap.add_argument("--cpu-only", action="store_true", help="only CPU per request (1 vs auto)")
    ap.add_argument(
        "--overload-only",
        action="store_true",
        help="only the 1.5x runs, at 1.5x the ceilings of --prior",
    )
    ap.add_argument(
        "--no-lag",
        action="store_true",
        help="judge scfleet as plain k6 is judged: delivered and dropped only, no start-lag limit",
    )
    ap.add_argument(
        "--k6-lag",
        action="store_true",
        help="also search k6 with a start-lag probe, judged by all three criteria as scfleet is "
        "(generator k6-lag; k6-probe is the probe judged on delivered and dropped, for its cost)",
    )
    ap.add_argument(
        "--table", type=Path, nargs="+", help="only print the table of these JSON files merged"
    )
    ap.add_argument("--no-overload", action="store_true", help="skip the 1.5× ceiling runs")
    ap.add_argument("--prior", type=Path, help="JSON from an earlier run: search ±25 %% around it")
    ap.add_argument("--json", type=Path, help="write every step and result here")
    ap.add_argument("--cluster", help="Ray address for the 'cluster' generator")
    ap.add_argument("--quiet-machine", action="store_true", help="label the figures quiet")
    ap.add_argument("--deadline", help="UTC HH:MM: start no new search after it")
    ap.add_argument(
        "--target-priority",
        type=int,
        metavar="N",
        help="run nginx (master and workers) at SCHED_FIFO N, e.g. above the bench's chrt -f 20 "
        "so the generator cannot starve the target; default: inherited from the bench",
    )
    ap.add_argument(
        "--warm",
        default="0",
        help='scfleet\'s [run] warm_connections: 0 (default: on demand, as k6), "auto" or N',
    )
    ap.add_argument(
        "--pool-ms",
        type=PoolMs.parse,
        default=DEFAULT_POOL,
        metavar="PRE,MAX",
        help="device pool as PRE and MAX ms of arrivals (k6 preAllocatedVUs/maxVUs, scfleet "
        f"pre_allocated_devices/max_devices), every generator alike; default {DEFAULT_POOL}",
    )
    args = ap.parse_args()
    if args.warm != "auto" and not args.warm.isdigit():
        raise SystemExit(
            f'--warm: expected 0, "auto" or a number of connections, got {args.warm!r}'
        )
    signal.signal(signal.SIGTERM, _terminate)
    if args.table:
        return print_tables(args.table)
    gens = [g.strip() for g in args.generators.split(",") if g.strip()]
    if args.k6_lag and "k6-lag" not in gens:
        gens.insert(gens.index("k6") + 1 if "k6" in gens else len(gens), "k6-lag")
    bad = [g for g in gens if g not in GENERATORS]
    if bad:
        raise SystemExit(f"--generators: unknown {','.join(bad)} (known: {','.join(GENERATORS)})")
    if "cluster" in gens and not args.cluster:
        raise SystemExit("--generators cluster needs --cluster ADDRESS")
    bodies = [int(b) for b in args.bodies.split(",")]
    prior: dict[tuple[str, int], float] = {}
    if args.prior:
        for s in json.loads(args.prior.read_text())["searches"]:
            prior.setdefault((s["generator"], s["body"]), s["ceiling"])
        for (gen, body), c in list(prior.items()):  # a Ray run starts from the local ceiling
            if gen == "auto":
                prior.setdefault(("cluster", body), c)
            if gen == "k6":  # the probe's runs start from plain k6's ceiling
                prior.setdefault(("k6-lag", body), c)
                prior.setdefault(("k6-probe", body), c)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"scfleet [run] warm_connections: {args.warm} (--warm)")
    print(f"device pool: {pool_words(str(args.pool_ms))}, every generator")
    results: list[list[Search]] = []
    cpu: list[dict[str, object]] = []
    with contextlib.ExitStack() as stack:
        nginx = stack.enter_context(Nginx(priority=args.target_priority))
        d = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ceiling-"))
        bench = Bench(args, nginx, Path(d))
        print(f"nginx {nginx.url} (pid {nginx.pid}, workers {nginx.sched()})")
        if "cluster" in gens and args.cluster == "local":
            sys.path.insert(0, str(ROOT / "tests" / "scfleet"))
            from raycluster import two_node_cluster  # the CI test's loopback cluster

            ray = stack.enter_context(two_node_cluster(cpus_per_node=1))
            args.cluster, bench.env = ray.gcs, ray.env
            print(f"Ray: two nodes on loopback, GCS {ray.gcs}")
        if args.overload_only:
            row = []
            for body in bodies:
                for gen in gens:
                    c = prior.get((gen, body))
                    if not c or late(args):
                        continue
                    s = Search(gen, body, c, complete=True, warm=warm_of(gen, args.warm))
                    s.pool_ms = str(args.pool_ms)
                    s.overload = bench.run(gen, body, nice(c * 1.5), steady=True)
                    row.append(s)
            results.append(row)
        for rep in range(0 if args.cpu_only or args.overload_only else max(args.repeat, 1)):
            row: list[Search] = []
            for body in bodies:
                for gen in gens:
                    if late(args):
                        break
                    known = prior.get((gen, body)) or (
                        results[0][len(row)].ceiling
                        if results and len(results[0]) > len(row)
                        else None
                    )
                    print(f"[repeat {rep + 1}] {LABELS[gen]}, {body} B body", flush=True)
                    row.append(bench.search(gen, body, known))
            results.append(row)
            if args.json:
                _write(args, results, cpu, load_before)
            if rep == 0 and not args.no_cpu:  # before further repeats: they are optional
                for body, rate in cpu_cases(args):
                    if not late(args):
                        cpu.append(bench.cpu_per_request(body, rate))
                if args.json:
                    _write(args, results, cpu, load_before)
            if late(args):
                print(f"deadline {args.deadline} UTC reached: stopping")
                break
        if args.cpu_only:
            for body, rate in cpu_cases(args):
                if not late(args):
                    cpu.append(bench.cpu_per_request(body, rate))
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if args.json:
        _write(args, results, cpu, load_before)
    print()
    print(table(results, cpu, args.quiet_machine))
    if args.no_lag:
        print("(--no-lag: scfleet judged as plain k6 is, on delivered and dropped only)")


def print_tables(files: list[Path]) -> None:
    """The markdown table of several runs of this script (their repeats merged)."""
    results: list[list[Search]] = []
    cpu: list[dict[str, object]] = []
    quiet = True
    for f in files:
        doc = json.loads(f.read_text())
        quiet = quiet and bool(doc.get("quiet_machine"))
        reps: dict[int, list[Search]] = {}
        for sd in doc["searches"]:
            s = Search(sd["generator"], sd["body"], sd["ceiling"])
            s.warm = sd.get("warm", warm_of(s.generator, "unrecorded"))
            s.complete = sd.get("complete", True)
            s.pool_ms = sd.get("pool_ms", "unrecorded")
            s.steps = [Step(**st) for st in sd["steps"]]
            s.overload = Step(**sd["overload"]) if sd["overload"] else None
            reps.setdefault(sd["repeat"], []).append(s)
        results += list(reps.values())
        cpu += doc.get("cpu_per_request", [])
        print(f"{f}: load {doc['load_before']} → {doc['load_after']} ({doc['utc']})")
    print(table(results, cpu, quiet))


def _write(
    args: argparse.Namespace,
    results: list[list[Search]],
    cpu: list[dict[str, object]],
    load_before: tuple[float, float, float],
) -> None:
    doc = {
        "criteria": {
            "delivered_min": DELIVERED_MIN,
            "dropped_max": DROPPED_MAX,
            "lag_p99_max_ms": LAG_P99_MAX_MS,
            "k6": "delivered and dropped only (k6 has no start-lag metric)",
            "k6-lag": "all three; lag from the probe, its lower bound when a step dropped",
        },
        "step_s": args.step,
        "pool_ms": {"pre": args.pool_ms.pre, "max": args.pool_ms.max},
        "no_lag": args.no_lag,
        "quiet_machine": args.quiet_machine,
        "target_priority": args.target_priority,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "searches": [
            {
                "repeat": i,
                "generator": s.generator,
                "body": s.body,
                "ceiling": s.ceiling,
                "complete": s.complete,
                "warm": s.warm,
                "pool_ms": s.pool_ms,
                "overload": asdict(s.overload) if s.overload else None,
                "overload_fraction": (s.overload.achieved / s.ceiling)
                if s.overload and s.ceiling
                else None,
                "overload_steady_fraction": (s.overload.steady_rate / s.ceiling)
                if s.overload and s.overload.steady_rate and s.ceiling
                else None,
                "steps": [asdict(st) for st in s.steps],
            }
            for i, rep in enumerate(results)
            for s in rep
        ],
        "cpu_per_request": cpu,
    }
    args.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
