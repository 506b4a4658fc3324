"""bench/bench_ceiling.py's judging and parsing: k6's start lag from the probe's lines, which
yardstick judges which generator, the table's two k6 ratios and CPU per request by rate.

The probe's runs are simulated as k6's constant-arrival-rate executor runs them (slot g due at
g × period, a free VU or a drop, a counter per started iteration in start order, whole-ms
clocks), so the known true lag can be compared with what the bench makes of the lines.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import random
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_ceiling", BENCH / "bench_ceiling.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_ceiling"] = mod
    spec.loader.exec_module(mod)
    return mod


bc = _load()


@dataclass(frozen=True)
class SimRun:
    """A simulated k6 run: the probe's lines, the drops, and every started iteration's lag."""

    lines: list[str]
    dropped: int
    true_lags: list[float]


def simulate(
    rate: float,
    seconds: float,
    vus: int,
    busy_ms: float,
    seed: int,
    stalls: tuple[tuple[float, float], ...] = (),
) -> SimRun:
    """k6's loop: slot g is handled at max(due, the previous slot's handling) (later after a
    stall: (at ms, for ms)); a free VU starts it 0-0.2 ms later, else it is dropped; counters
    go to iterations in start order; ``Date.now()`` and ``startTime`` are whole ms."""
    rnd = random.Random(seed)
    period = int(1e9 / rate) / 1e6
    start_ns = rnd.randrange(10**15, 2 * 10**15)
    free_at = [0.0] * vus
    handled = 0.0
    started: list[tuple[float, float]] = []  # (actual ms, due ms)
    dropped = 0
    for g in range(int(rate * seconds)):
        due = g * period
        handled = max(due, handled)
        for at, length in stalls:
            if at <= handled < at + length:
                handled = at + length
        i = min(range(vus), key=free_at.__getitem__)
        if free_at[i] > handled:
            dropped += 1
            continue
        actual = handled + rnd.uniform(0.0, 0.2)
        free_at[i] = actual + busy_ms
        started.append((actual, due))
    started.sort()
    lines = []
    for counter, (actual, _due) in enumerate(started):
        now_ms = (start_ns + round(actual * 1e6)) // 10**6
        lines.append(f"{counter} {now_ms - start_ns // 10**6}")
    return SimRun(lines, dropped, [actual - due for actual, due in started])


def test_without_drops_the_lag_is_exact_to_a_millisecond() -> None:
    stalls = ((1000.0, 30.0), (2000.0, 30.0), (3000.0, 30.0))
    run = simulate(2000, 5, vus=100, busy_ms=2.0, seed=1, stalls=stalls)
    assert run.dropped == 0
    lag = bc.probe_lag(run.lines, 2000, run.dropped)
    truth = bc.p99(run.true_lags)
    assert truth > 5  # the stall makes the p99: the probe must see it
    assert lag.exact and lag.p99_ms == lag.p99_hi_ms
    assert abs(lag.p99_ms - truth) <= 1.0
    assert lag.n == len(run.true_lags)


def test_drops_do_not_shift_the_schedule_of_later_iterations() -> None:
    """Few VUs that stay busy 10 ms: half the slots are dropped while every start is on time.
    Taking the counter as the slot (the naive probe) puts later iterations seconds late."""
    run = simulate(1000, 5, vus=5, busy_ms=10.0, seed=2)
    assert run.dropped > 1000
    assert bc.p99(run.true_lags) < 0.5
    lag = bc.probe_lag(run.lines, 1000, run.dropped)
    assert lag.p99_hi_ms > 1000  # what the counter alone says
    assert lag.p99_ms <= 1.0  # the bench: on time, to its resolution


@pytest.mark.parametrize("seed", range(8))
def test_the_two_bounds_hold_the_true_lag(seed: int) -> None:
    rnd = random.Random(seed)
    stalls = tuple((rnd.uniform(100, 2900), rnd.uniform(2, 60)) for _ in range(rnd.randrange(0, 4)))
    rate = rnd.choice([1000.0, 3500.0, 8000.0])
    vus = rnd.randrange(4, 40)
    run = simulate(rate, 3, vus=vus, busy_ms=rnd.uniform(0.5, 6), seed=seed, stalls=stalls)
    lag = bc.probe_lag(run.lines, rate, run.dropped)
    truth = bc.p99(run.true_lags)
    assert lag.p99_ms <= truth + 1.0  # the judged bound never over-states k6's lag
    assert lag.p99_hi_ms >= truth - 1.0
    if run.dropped == 0:
        assert lag.exact and abs(lag.p99_ms - truth) <= 1.0


def test_probe_lines_parsing() -> None:
    assert bc.probe_lag([], 1000, 0) is None
    assert bc.probe_lag(["-", "x y"], 1000, 0) is None
    lag = bc.probe_lag(["0 0", "1 1", "garbage", "2 9", ""], 1000, 0)
    assert lag is not None
    assert (lag.n, lag.malformed) == (3, 2)
    assert lag.p99_ms == lag.max_ms == 7.0
    assert bc.p99([5.0] * 98 + [6.0, 50.0]) == 6.0  # nearest rank: the 99th of 100


def _step(gen: str, rate: float, *, ok: int, dropped: int, lag: float | None) -> object:
    return bc.Step(
        generator=gen,
        body=1024,
        rate=rate,
        duration=10,
        scheduled=round(rate * 10),
        requests=ok,
        ok=ok,
        dropped=dropped,
        lag_p99_ms=lag,
        cpu_s=1.0,
        wall_s=15.0,
        nginx_cpu_s=1.0,
        nginx_busiest_worker_s=0.5,
        load1=1.0,
    )


def test_which_yardstick_judges_which_generator() -> None:
    assert not bc.judged_by_lag("k6", no_lag=False)
    assert not bc.judged_by_lag("k6-probe", no_lag=False)
    assert bc.judged_by_lag("k6-lag", no_lag=True)  # --no-lag is about scfleet
    assert bc.judged_by_lag("auto", no_lag=False)
    assert not bc.judged_by_lag("w1", no_lag=True)
    late = _step("k6-lag", 1000, ok=10000, dropped=0, lag=7.5)
    assert not late.judge(lag=True).passed and late.why == "lag p99 7.5 ms"
    assert late.judge(lag=False).passed
    unmeasured = _step("k6-lag", 1000, ok=10000, dropped=0, lag=None).judge(lag=True)
    assert not unmeasured.passed and unmeasured.why == "no start lag measured"
    short = _step("k6", 1000, ok=9800, dropped=200, lag=None).judge(lag=False)
    assert short.why == "delivered 98.0%, dropped 2.0%"


def _search(gen: str, ceiling: float, lag: float | None = None, hi: float | None = None) -> object:
    s = bc.Search(gen, 1024, ceiling)
    st = _step(gen, ceiling, ok=round(ceiling * 10), dropped=0, lag=lag)
    st.lag_p99_hi_ms = hi
    s.steps = [st.judge(lag=bc.judged_by_lag(gen, False))]
    return s


def test_table_prints_both_k6_yardsticks_and_both_ratios() -> None:
    runs = [
        [
            _search("auto", 9000, lag=3.0),
            _search("k6", 4500),
            _search("k6-lag", 3000, lag=2.0, hi=6.0),
        ]
    ]
    text = bc.table(runs, [], quiet=False)
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| 1,024")}
    assert rows["scfleet --workers auto"].endswith("| 2.00× | 3.00× |")
    assert rows["k6 (delivered, dropped)"].endswith("| 1.00× | 1.50× |")
    assert rows["k6 + lag probe (all three)"].endswith("| 0.67× | 1.00× |")
    assert "2.00 ms (≤ 6.00)" in rows["k6 + lag probe (all three)"]
    assert "n/a (no probe)" in rows["k6 (delivered, dropped)"]
    assert "upper bound was ≥ 5 ms: 1." in text
    nothing = bc.Search("k6-lag", 1024, 0.0)
    nothing.steps = [
        _step("k6-lag", r, ok=r * 10, dropped=0, lag=9.0).judge(True) for r in (60, 30)
    ]
    assert "BUSY" in text
    text = bc.table([runs[0][:2] + [nothing]], [], quiet=True)
    assert "0/s (1 run; 1 of 1 runs: no step passed, down to 30/s)" in text


def test_cpu_per_request_at_several_rates() -> None:
    args = argparse.Namespace(cpu_bodies="32000,1024", cpu_rates="4000,8000")
    assert bc.cpu_cases(args) == [(32000, 4000.0), (32000, 8000.0), (1024, 4000.0), (1024, 8000.0)]
    cpu = [
        {"rate": r, "body": 32000, "w1_us": [100.0], "auto_us": [100.0 * f], "overhead": f - 1}
        for r, f in ((4000.0, 1.25), (8000.0, 1.1))
    ]
    text = bc.table([], cpu, quiet=True)
    assert "CPU per request at 8,000.0/s, 32,000 B" in text
    assert "auto's CPU per request against 1 worker, 32,000 B, by rate: 4,000/s +25.0%, " in text
    assert "8,000/s +10.0%" in text


def test_the_share_run_wakes_as_an_auto_worker_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--cpu-only``'s third run (1 worker at the rate ÷ N) splits auto's overhead into
    "smaller parts" and "coordination" only if it wakes for its arrivals as each of auto's N
    workers does: with their arrival quantum. Before, it ran with none (twice the wake-ups of
    an auto worker at 2 workers) and the split meant nothing."""
    calls: list[tuple[str, float, int]] = []

    class Recording(bc.Bench):  # type: ignore[misc,name-defined]
        def run(
            self, gen: str, body: int, rate: float, duration: float | None = None, **kw: int
        ) -> object:
            calls.append((gen, rate, kw.get("quantum_of", 0)))
            st = _step(gen, rate, ok=round(rate * 10), dropped=0, lag=1.0)
            st.cpu_s = 0.1 + rate * 10 * 100e-6  # 100 µs a request
            return st

        def run_together(self, body: int, rate: float, copies: int, duration: float) -> object:
            calls.append(("together", rate, copies))
            st = _step("w1", rate, ok=round(rate * 10), dropped=0, lag=1.0)
            st.cpu_s = 0.1 * copies + rate * 10 * 100e-6  # each copy idles as one run does
            return st

    monkeypatch.setattr(bc.os, "sched_getaffinity", lambda pid: {0, 1})
    args = argparse.Namespace(step=10.0, repeat=1, warm="0")
    out = Recording(args, None, tmp_path).cpu_per_request(32000, 4000.0)
    loaded = [c for c in calls if c[1] > 1]
    assert loaded == [
        ("w1", 4000.0, 0),
        ("auto", 4000.0, 0),
        ("w1", 2000.0, 2),
        ("together", 4000.0, 2),  # auto's workers without a coordinator: 2 runs side by side
    ]
    assert out["w1_part_us"] == [pytest.approx(100.0)]
    # the two copies' idle CPU is taken off twice: 100 µs, not 100 + 0.1 s / 40,000
    assert out["w1_together_us"] == [pytest.approx(100.0)]
    assert "coordination (auto vs them) **" in bc.table([], [out], quiet=False)
    assert out["overhead_vs_together"] == pytest.approx(0.0, abs=1e-9)
    assert "(each auto worker's share, with its arrival quantum): 100.0 µs" in bc.table(
        [], [out], quiet=False
    )
    old = {k: v for k, v in out.items() if k != "w1_part_quantum_of"}  # an earlier JSON's
    assert "without its arrival quantum: the split is not like for like" in bc.table(
        [], [old], quiet=False
    )
    # what the share run's process is given: the quantum of a worker of 2, nothing else
    from simulator.executors.runtime import QUANTUM_OF_ENV

    bench = bc.Bench(args, None, tmp_path)
    monkeypatch.setenv(QUANTUM_OF_ENV, "7")  # never inherited from the bench's own shell
    assert bench.generator_env(2)[QUANTUM_OF_ENV] == "2"
    assert QUANTUM_OF_ENV not in bench.generator_env()
    bench.env = {"RAY_ADDRESS": ""}  # a Ray cluster's environment is the base when there is one
    assert bench.generator_env(2) == {"RAY_ADDRESS": "", QUANTUM_OF_ENV: "2"}


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx not installed"
)
def test_nginx_logs_the_probe_header_and_only_it() -> None:
    from nginx_target import Nginx

    with Nginx() as n:
        for i, probe in enumerate(["0 1", None, "1 3"]):
            req = urllib.request.Request(f"{n.url}/x", data=b"abc", method="POST")
            if probe:
                req.add_header("X-Lag-Probe", probe)
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200, i
        # each nginx worker flushes its own log buffer: lines come in any order (probe_lag
        # sorts them by counter); the whole-suite run under load once read ['1 3', '0 1']
        assert sorted(n.take_probe_log(expect=2, timeout_s=30)) == ["0 1", "1 3"]
        assert n.take_probe_log() == []  # emptied: the next run starts clean
    assert math.isfinite(bc.LAG_P99_MAX_MS)


def test_steal_is_read_per_vcpu_and_the_most_one_lost_is_taken() -> None:
    now = bc.steal_ms()
    if Path("/proc/stat").exists():
        assert len(now) >= 1 and all(v >= 0 for v in now)
    assert bc.most_stolen([10.0, 20.0], [10.0, 120.0]) == 100.0
    assert bc.most_stolen([], []) == 0.0


class _Scripted(bc.Bench):
    """A bench whose runs are scripted: (passed by lag?, steal) per call, in order."""

    def __init__(self, script: list[tuple[float, float]]) -> None:
        self.args = argparse.Namespace(
            resolution=0.5,
            max_steps=10,
            deadline="",
            no_overload=True,
            start=1000,
            no_lag=False,
            warm="0",
        )
        self.script = script
        self.rates: list[float] = []

    def run(
        self, gen: str, body: int, rate: float, duration: float | None = None, **_: object
    ) -> object:
        lag, steal = self.script.pop(0)
        self.rates.append(rate)
        st = _step(gen, rate, ok=round(rate * 10), dropped=0, lag=lag)
        st.steal_ms = steal
        return st.judge(lag=True)


def test_a_step_failed_under_a_hypervisor_stall_is_run_once_more() -> None:
    # 1000 passes; 2000 fails with a 100 ms steal, is run again and passes; 4000 fails with
    # a steal twice (run again once only); 2828 fails with no steal (not run again)
    bench = _Scripted(
        [(3.0, 0.0), (40.0, 100.0), (3.0, 0.0), (40.0, 100.0), (40.0, 100.0), (9.0, 0.0)]
    )
    s = bench.search("auto", 1024, None)
    assert bench.rates == [1000, 2000, 2000, 4000, 4000, 2800]
    assert s.ceiling == 2000
    assert [st.rerun for st in s.steps] == [False, True, False, True, False, False]
    text = bc.table([[s]], [], quiet=True)
    assert "(any generator, once): scfleet --workers auto 2." in text
    clean = _Scripted([(3.0, 0.0), (9.0, 20.0), (3.0, 0.0), (3.0, 0.0)])
    s = clean.search("k6-lag", 1024, None)
    assert not any(st.rerun for st in s.steps)  # 20 ms: below STEAL_RERUN_MS
    assert "(any generator, once): none." in bc.table([[s]], [], quiet=True)


def _served(rates: list[float], every: float = 0.1, t0: float = 100.0) -> list[tuple[float, int]]:
    """nginx's counter sampled every ``every`` s: ``rates[i]`` requests a second in second i
    after a first sample with nothing served yet (the generator starting)."""
    samples, n, t = [(t0, 0)], 0.0, t0
    per_second = round(1 / every)
    for r in rates:
        for _ in range(per_second):
            t += every
            n += r * every
            samples.append((t, round(n)))
    return samples


def test_the_steady_rate_leaves_out_the_first_second_and_the_tail() -> None:
    """A 1.5× run as measured (21,000/s, 10 s schedule): 9k its first second (every device's
    first connect), 15k steady, then the second past the schedule in which scfleet still starts
    arrivals up to MAX_LATE late (9k) and a drain. Its achieved rate over the whole run (the
    summary's requests ÷ 11.3 s) is 10 % under what it sustained; the steady rate is that."""
    rates = [9000.0] + [15000.0] * 9 + [9000.0, 1000.0]
    samples = _served(rates)
    steady = bc.steady_rate(samples, 10.0)
    assert steady == pytest.approx(15000, rel=1e-3)
    st = _step("auto", 21000, ok=round(sum(rates)), dropped=0, lag=None)
    st.duration, st.reqs_rate = 10.0, sum(rates) / 11.3  # the summary's rate: the whole run
    assert st.achieved < 0.92 * steady  # what the 1.5× column showed alone before
    # a generator that starts later than the bench (start-up): the window follows its first
    # request, not the bench's clock
    late = [(t, 0) for t in (98.0, 99.0)] + samples
    assert bc.steady_rate(late, 10.0) == pytest.approx(15000, rel=1e-3)
    assert bc.steady_rate(samples[:1], 10.0) is None
    assert bc.steady_rate([(1.0, 0), (2.0, 0)], 10.0) is None  # nothing served
    assert bc.steady_rate(_served([15000.0] * 3), 10.0) is None  # samples end too soon


def test_the_table_gives_the_steady_fraction_beside_the_achieved_one() -> None:
    s = bc.Search("auto", 32000, ceiling=14000.0)
    s.steps = [_step("auto", 14000, ok=140000, dropped=0, lag=None).judge(lag=False)]
    over = _step("auto", 21000, ok=140000, dropped=70000, lag=None)
    over.reqs_rate, over.steady_rate = 13000.0, 15400.0
    s.overload = over
    text = bc.table([[s]], [], quiet=True)
    assert "| 93%; steady 110% |" in text


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx not installed"
)
def test_nginx_counts_the_generators_requests_not_its_own_reads() -> None:
    from nginx_target import Nginx

    with Nginx() as n:
        before = n.served()
        assert n.served() == before  # a read of the counter is not a request served
        for _ in range(3):
            req = urllib.request.Request(f"{n.url}/x", data=b"abc", method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
        assert n.served() == before + 3
        with bc.ServedSampler(n, every=0.01) as sampler:
            deadline = time.monotonic() + 10
            while len(sampler.samples) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert len(sampler.samples) >= 3
        assert {c for _, c in sampler.samples} == {before + 3}


@pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx not installed"
)
def test_target_priority_puts_every_nginx_worker_at_that_fifo_priority() -> None:
    import os

    from nginx_target import Nginx

    try:  # SCHED_FIFO needs root or CAP_SYS_NICE: probe it in a child, as nginx's start does
        pid = os.fork()
        if pid == 0:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            except OSError:
                os._exit(1)
            os._exit(0)
        allowed = os.waitpid(pid, 0)[1] == 0
    except OSError:
        allowed = False
    if not allowed:
        pytest.skip("SCHED_FIFO not permitted here")
    with Nginx(workers=2, priority=7) as n:
        assert n.sched() == "SCHED_FIFO 7"  # both workers, inherited from the master
        req = urllib.request.Request(f"{n.url}/x", data=b"abc", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    with Nginx(workers=1) as n:  # default: the bench's own scheduling, unchanged
        assert "SCHED_FIFO 7" not in n.sched()


def test_every_scfleet_figure_names_its_warm_setting(tmp_path: Path) -> None:
    """``--warm``: scfleet's ``[run] warm_connections``; the table names it beside each
    scfleet row (k6 has none: it cannot open connections before its start), and a JSON from
    before the option reads "unrecorded", never a guess."""
    w1 = bc.Search("w1", 1024, 9000.0, warm="auto")
    k6 = bc.Search("k6", 1024, 8000.0, warm=bc.warm_of("k6", "auto"))
    old = bc.Search("auto", 1024, 9500.0, warm=bc.warm_of("auto", "unrecorded"))
    text = bc.table([[w1, k6, old]], [], quiet=True)
    assert "| scfleet --workers 1, warm auto |" in text
    assert "| k6 (delivered, dropped) |" in text
    assert "| scfleet --workers auto, warm unrecorded |" in text
    assert "`[run] warm_connections` (--warm): 0 dials on demand" in text
    assert bc.warm_value("auto") == '"auto"' and bc.warm_value("0") == "0"
    from scfleet import api

    cfg = tmp_path / "sc.toml"  # what Bench.run writes for --warm auto
    toml = bc.SCFLEET_TOML.format(rate=100, duration=1, pre=5, max=10, body=1024)
    cfg.write_text(bc.SCFLEET_WARM.format(warm=bc.warm_value("auto")) + toml)
    assert api.load(cfg).run.warm_connections == "auto"
    for warm, want in (("0", 0), ("auto", "auto"), ("7", 7)):  # bench_ceiling and bench_pyspy
        cfg.write_text(bc.scfleet_config(12000, 10, 1024, warm))
        loaded = api.load(cfg)
        assert loaded.run.warm_connections == want
        assert loaded.scenarios[0].executor.pre_allocated() == bc.Bench.devices(12000)[0]


def test_the_steady_window_splits_cpu_into_coordinator_and_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Whole-run CPU minus a 1 req/s run left each process's start-up and shutdown in the
    figure (tenths of a second a process, three processes for auto against one), so its split
    read coordination at +15 % in one session and -1 % in the next. The steady window is the
    schedule's middle only, part by part: the coordinator's CPU per request, the workers'."""
    root = 100
    a = (0.0, 1000, {root: 1.0, 101: 2.0, 102: 2.0})
    b = (5.0, 21000, {root: 1.1, 101: 2.8, 102: 2.9})  # 4,000 req/s for 5 s
    w = bc.window_between((root,), a, b)
    assert w == bc.Window(
        seconds=5.0, coordinator_s=pytest.approx(0.1), workers_s=pytest.approx(1.7), served=20000
    )
    # a worker that started or ended between the reads: no window, never half a tree
    assert bc.window_between((root,), a, (5.0, 21000, {root: 1.1, 101: 2.8})) is None
    # the idle run spent 0.01 s/s in its coordinator and 0.02 s/s in its workers
    idle = bc.Window(seconds=5.0, coordinator_s=0.05, workers_s=0.1, served=5)
    us = bc.steady_us(w, [idle])
    assert us["coordinator"] == pytest.approx((0.02 - 0.01) / 4000 * 1e6)  # 2.5 µs
    assert us["workers"] == pytest.approx((0.34 - 0.02) / 4000 * 1e6)  # 80 µs
    assert us["tree"] == pytest.approx(us["coordinator"] + us["workers"])

    class Recording(bc.Bench):  # type: ignore[misc,name-defined]
        def run(
            self, gen: str, body: int, rate: float, duration: float | None = None, **kw: object
        ) -> object:
            assert kw.get("window") is True  # every CPU run reads its window
            st = _step(gen, rate, ok=round(rate * 10), dropped=0, lag=1.0)
            st.cpu_s = 1.0 + rate * 10 * 80e-6
            procs = 0.0 if gen == "w1" else 0.005  # the coordinator: 5 ms a second
            st.window = bc.Window(
                seconds=5.0,
                coordinator_s=(0.05 + rate * 5 * 80e-6 if gen == "w1" else 0.05 + procs * 5),
                workers_s=0.0 if gen == "w1" else 0.1 + rate * 5 * 80e-6,
                served=round(rate * 5),
            )
            return st

        def run_together(self, body: int, rate: float, copies: int, duration: float) -> object:
            st = _step("w1", rate, ok=round(rate * 10), dropped=0, lag=1.0)
            st.cpu_s = 1.0 * copies + rate * 10 * 80e-6
            st.window = bc.Window(  # two one-process runs: each idles 0.01 s a second
                seconds=5.0,
                coordinator_s=0.05 * copies + rate * 5 * 80e-6,
                workers_s=0.0,
                served=round(rate * 5),
            )
            return st

    monkeypatch.setattr(bc.os, "sched_getaffinity", lambda pid: {0, 1})
    args = argparse.Namespace(step=10.0, repeat=1, warm="0")
    out = Recording(args, None, tmp_path).cpu_per_request(32000, 4000.0)
    assert out["w1_together_steady_tree_us"] == [pytest.approx(80.0, abs=0.05)]
    # (the 1 req/s run's own request is in what it spent a second: 80 µs of 4,000 requests')
    assert out["w1_steady_tree_us"] == [pytest.approx(80.0, abs=0.05)]
    assert out["auto_steady_workers_us"] == [pytest.approx(80.0, abs=0.05)]
    assert out["auto_steady_coordinator_us"] == [pytest.approx(0.0, abs=1e-9)]
    text = bc.table([], [out], quiet=True)
    assert "auto's coordinator 0.0 µs (0.0–0.0), its workers 80.0 µs" in text
    assert "in the workers (auto's workers vs that share) +0.0%" in text
    old = {k: v for k, v in out.items() if "_steady_" not in k}  # a JSON from before: no line
    assert "Steady window" not in bc.table([], [old], quiet=True)


class _Launched(Exception):
    """Raised in place of starting a generator: the run's files are written by then."""


@pytest.mark.parametrize("gen", ["k6", "auto"])
def test_pool_ms_sizes_the_k6_script_and_the_scfleet_config_alike(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gen: str
) -> None:
    """``--pool-ms PRE,MAX``: pre-allocated and max devices are PRE and MAX ms of arrivals for
    k6 (preAllocatedVUs/maxVUs) and scfleet (pre_allocated_devices/max_devices) alike; the
    default is the earlier fixed sizing (50 ms, up to 250 ms), the floors stay."""
    from scfleet import api

    assert bc.PoolMs.parse("50,250") == bc.DEFAULT_POOL
    assert bc.DEFAULT_POOL.devices(33000) == (1650, 8250)  # rate ÷ 20, rate ÷ 4: as before
    assert bc.PoolMs.parse("10,50").devices(33000) == (330, 1650)
    assert bc.PoolMs.parse("10,50").devices(2000) == (64, 256)  # the floors
    for bad in ("10", "50,10", "0,50", "a,b", "10,50,90", "nan,50", "10,inf"):
        with pytest.raises(SystemExit, match="--pool-ms"):
            bc.PoolMs.parse(bad)

    def no_launch(*a: object, **kw: object) -> None:
        raise _Launched

    monkeypatch.setattr(bc.subprocess, "Popen", no_launch)
    nginx = argparse.Namespace(url="http://127.0.0.1:9", cpu=lambda: 0.0)
    for pool, want in ((bc.PoolMs(10, 50), (330, 1650)), (None, (1650, 8250))):
        args = argparse.Namespace(step=1.0, warm="0")
        if pool is not None:
            args.pool_ms = pool  # a Namespace without it (as elsewhere here) is the default
        run_dir = tmp_path / str(pool)
        run_dir.mkdir()
        with pytest.raises(_Launched):
            bc.Bench(args, nginx, run_dir).run(gen, 1024, 33000.0)
        if gen == "k6":
            (script,) = run_dir.glob("k6-*.js")
            assert f"preAllocatedVUs: {want[0]}, maxVUs: {want[1]}," in script.read_text()
        else:
            (cfg,) = run_dir.glob("sc-*.toml")
            (scenario,) = api.load(cfg).scenarios
            assert (scenario.executor.pre_allocated(), scenario.executor.max_devices) == want


def test_the_pool_sizing_is_in_the_table_and_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A figure says which device pool it used: the table's header names the one sizing of
    its rows, or each row its own when they differ; k6's ratio is taken at the same sizing."""
    small = str(bc.PoolMs(10, 50))
    auto = bc.Search("auto", 32000, 22000.0, warm="0", pool_ms=small)
    k6 = bc.Search("k6", 32000, 4000.0, pool_ms=small)
    text = bc.table([[auto, k6]], [], quiet=True)
    assert "10 ms of arrivals pre-allocated, up to 50 ms (--pool-ms 10,50)" in text
    assert "5.50×" in text  # 22,000 ÷ 4,000, both at 10,50
    k6_default = bc.Search("k6", 32000, 2000.0)  # 50,250: not auto's yardstick
    text = bc.table([[auto, k6, k6_default]], [], quiet=True)
    assert "): by row" in text
    assert "| scfleet --workers auto, warm 0, pool 10,50 ms |" in text
    assert "| k6 (delivered, dropped), pool 50,250 ms |" in text
    assert "5.50×" in text and "11.00×" not in text
    args = argparse.Namespace(
        step=10.0,
        no_lag=True,
        quiet_machine=False,
        json=tmp_path / "out.json",
        pool_ms=bc.PoolMs(10, 50),
        target_priority=30,
    )
    bc._write(args, [[auto]], [], (0.0, 0.0, 0.0))
    doc = bc.json.loads(args.json.read_text())
    assert doc["pool_ms"] == {"pre": 10.0, "max": 50.0}
    assert doc["target_priority"] == 30
    assert doc["searches"][0]["pool_ms"] == "10,50"
    for sd in doc["searches"]:  # a JSON from before the option: unrecorded, never a guess
        del sd["pool_ms"]
    args.json.write_text(bc.json.dumps(doc))
    bc.print_tables([args.json])
    assert "unrecorded (a JSON from before --pool-ms" in capsys.readouterr().out
