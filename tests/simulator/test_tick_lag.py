"""Start lag at high rates: the per-second tick must not hold the event loop.

At 6,000–8,000 arrivals/s on nginx, arrivals due in the 10 ms after a tick began started
8 ms late at the median (0.5 ms elsewhere): the tick folded the second's rows into every
histogram in one piece (~10 ms) and then diffed every bucket ever seen for the run stream
(4–8 ms, growing with the run). These tests pin the mechanisms, not timings: the tick yields
to the loop between histograms, and a tick's delta never walks the buckets it did not touch.
"""

from __future__ import annotations

import asyncio
import json
import math
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import vtime

from simulator.config import parse_config
from simulator.http import FakeTransport
from simulator.metrics import Histogram, Registry, fold_columns
from simulator.metrics import recorders as recorders_mod
from simulator.report.output import RunStream, _dumps
from simulator.run.runner import Environment, build_bank
from simulator.run.workers import DeltaTracker


def test_the_tick_yields_to_the_loop_between_histograms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each histogram fold of a tick schedules a marker callback; if the tick folded in one
    piece (before), every marker ran after the last fold. Now the loop turns between folds,
    so arrivals due during the tick fire on time."""
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 200,
                    "duration": "1500ms",
                    "pre_allocated_devices": 20,
                    "device": {"chunk_bytes": 320},
                }
            },
        }
    )
    folds = 0
    seen_at: list[int] = []  # folds done when each marker ran
    real_fold = recorders_mod.fold_columns

    def fold(hists: Any, matrix: Any) -> None:
        nonlocal folds
        real_fold(hists, matrix)
        folds += 1
        asyncio.get_running_loop().call_soon(lambda: seen_at.append(folds))

    monkeypatch.setattr(recorders_mod, "fold_columns", fold)

    async def main() -> Any:
        env = Environment(cfg, FakeTransport(), bank=build_bank(cfg))
        first_tick: list[tuple[int, int]] = []

        def on_tick(env: Environment, point: dict[str, Any]) -> None:
            if not first_tick:
                first_tick.append((folds, len(seen_at)))

        env.tick_hooks.append(on_tick)
        result = await env.run()
        return result, first_tick

    result, first_tick = vtime.run_virtual(main())
    assert result.registry.aggregate("http_reqs", {}, "count") == 300
    folds_in_tick, markers_before_point = first_tick[0]
    # the second's rows: iterations 2 histograms, requests 6 (the interval rides with the
    # first); a fold of the few rows recorded during those loop turns may follow
    gentle = 8
    assert folds_in_tick >= gentle
    # every one of them was followed by a loop turn before the next fold
    assert seen_at[:gentle] == list(range(1, gentle + 1))
    assert markers_before_point >= gentle


def test_fold_gently_cancelled_still_folds_what_it_took() -> None:
    """A run stopping mid-tick cancels the tick: rows taken must not be lost."""
    from simulator.metrics import IntervalStats, IterationRecorder, tags_of
    from simulator.run.runner import fold_gently

    reg = Registry()
    it = IterationRecorder(reg, tags_of((("scenario", "s"),)), tags_of(()), IntervalStats())
    for i in range(50):
        it.record(100 + i, i)

    async def main() -> None:
        task = asyncio.ensure_future(fold_gently(reg))
        await asyncio.sleep(0)  # the first step ran; the task now waits at a yield
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    lag = reg.merged("schedule_lag")
    dur = reg.merged("iteration_duration")
    assert lag is not None and dur is not None
    assert lag.hist.count == 50 and dur.hist.count == 50  # type: ignore[union-attr]


class _NoWalk(dict[int, int]):
    """Bucket counts that may be updated but never walked or copied whole."""

    def items(self) -> Any:
        raise AssertionError("walked every bucket")

    def __iter__(self) -> Any:
        raise AssertionError("walked every bucket")

    def keys(self) -> Any:
        raise AssertionError("walked every bucket")


def _many_buckets(reg: Registry) -> Any:
    from simulator.metrics import IntervalStats, IterationRecorder, tags_of

    it = IterationRecorder(reg, tags_of((("scenario", "s"),)), tags_of(()), IntervalStats())
    for i in range(3000):
        it.record(10 + i, 1000 + 7 * i)
    return it


@pytest.mark.parametrize("consumer", ["run stream", "worker snapshot"])
def test_a_ticks_delta_touches_only_the_buckets_added_since(
    consumer: str, tmp_path: pathlib.Path
) -> None:
    """Before: RunStream._delta and DeltaTracker.take diffed (and copied) every bucket ever
    seen, each tick — milliseconds that grew with the run, on the event loop."""
    reg = Registry()
    it = _many_buckets(reg)
    take: Any
    if consumer == "run stream":
        stream = RunStream(tmp_path, {})
        take = lambda: stream._delta(reg)  # noqa: E731
    else:
        take = DeltaTracker(reg).take
    take()  # the first tick: everything so far
    for s in reg.series.values():
        if hasattr(s, "hist"):
            s.hist.counts = _NoWalk(s.hist.counts)
    it.record(10, 1000)  # one more iteration, into buckets that already hold counts
    it.record(10, 1000)
    out = take()
    if consumer == "run stream":
        written = json.loads(_dumps(out))  # the fresh counts are read as the line is written
        hists = {d["metric"]: d["hist"] for d in written["series"] if "hist" in d}
        assert hists["schedule_lag"]["counts"] == {"1000": 2}
        assert hists["schedule_lag"]["count"] == 2
    else:
        hists = {d.metric: d.value.hist for d in out if hasattr(d.value, "hist")}
        assert hists["schedule_lag"].counts == {1000: 2}
        assert hists["schedule_lag"].count == 2


def test_fresh_buckets_add_up_to_the_difference_of_two_readings() -> None:
    """Whatever mutates a histogram (folds, single records, merges), the fresh counts taken
    each time are exactly the difference between two readings of its buckets."""
    import numpy as np

    rng = np.random.default_rng(7)
    h = Histogram()
    h.record(5)
    assert h.take_fresh().counts == {5: 1}  # the first take: all so far
    before = dict(h.counts)
    fold_columns([h], rng.integers(0, 50_000, size=(500, 1)))
    h.record(123_456)
    other = Histogram()
    for v in rng.integers(0, 3000, size=200).tolist():
        other.record(v)
    h.merge(other)
    fold_columns([h], rng.integers(0, 50_000, size=(300, 1)))
    fresh = h.take_fresh().counts
    diff = {i: n - before.get(i, 0) for i, n in h.counts.items() if n != before.get(i, 0)}
    assert fresh == diff
    assert sum(fresh.values()) == 1001
    assert h.take_fresh().counts == {}


@pytest.mark.slow  # starts a worker process (~2 s): the fast tier stays under 60 s
def test_a_worker_runs_its_loop_with_the_tuned_collector(http_sink: Callable[..., str]) -> None:
    """Before: only the single process froze its set-up objects and collected young objects
    every 50,000 allocations; worker processes ran with the default (700): more collections
    per request, and full collections walking every device and histogram mid-run."""
    import gc

    from simulator.run.workers import Snapshot

    url = http_sink()
    seen: list[tuple[int, int]] = []

    def send(msg: Any) -> None:
        if isinstance(msg, Snapshot):
            seen.append((gc.get_threshold()[0], gc.get_freeze_count()))

    before = gc.get_threshold()
    _run_one_worker(url, "1200ms", send)
    assert seen, "no snapshot"
    assert all(threshold == 50_000 and frozen > 0 for threshold, frozen in seen), seen
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_the_run_streams_line_is_encoded_one_histogram_per_loop_turn(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the tick line (a second's bucket deltas, ~10,000 buckets at 8,000 requests/s)
    went through one json.dumps inside the tick, ~5-8 ms holding the loop. Now the line is
    encoded after the tick, one histogram series per loop turn, and written whole."""
    import json

    from simulator.report import output

    reg = Registry()
    _many_buckets(reg)
    stream = RunStream(tmp_path, {})
    env = type("Env", (), {"registry": reg, "notes": ["a note"]})()
    real_dumps = json.dumps
    encoded = 0  # histogram series encoded so far
    seen_at: list[int] = []

    def hists_in(obj: Any) -> int:
        if isinstance(obj, dict) and "hist" in obj:
            return 1
        if isinstance(obj, dict) and isinstance(obj.get("registry"), dict):
            return sum("hist" in s for s in obj["registry"]["series"])
        return 0

    def dumps(obj: Any, **kw: Any) -> str:
        nonlocal encoded
        n = hists_in(obj)
        if n:
            encoded += n
            asyncio.get_running_loop().call_soon(lambda: seen_at.append(encoded))
        return real_dumps(obj, **kw)

    monkeypatch.setattr(output.json, "dumps", dumps)

    async def main() -> None:
        stream.tick(env, {"t": 1.0, "scenarios": {}})
        for _ in range(100):  # bounded: a handful of turns write it
            await asyncio.sleep(0)

    asyncio.run(main())
    monkeypatch.undo()
    assert encoded == 2  # iteration_duration and schedule_lag
    assert seen_at[0] == 1  # the loop turned after the first histogram, before the second
    stream.close()
    lines = (tmp_path / "run.ndjson").read_text().splitlines()
    tick = json.loads(lines[1])
    assert tick["point"] == {"t": 1.0, "scenarios": {}} and tick["notes"] == ["a note"]
    lag = next(s for s in tick["registry"]["series"] if s["metric"] == "schedule_lag")
    assert sum(lag["hist"]["counts"].values()) == lag["hist"]["count"] == 3000
    assert stream.timeline() == [{"t": 1.0, "scenarios": {}}]


def test_the_stepwise_encoding_is_the_one_piece_encoding() -> None:
    from simulator.report.output import _dumps, encoded_tick

    line = {
        "type": "tick",
        "wall": 1.5,
        "point": {"t": 1.0, "scenarios": {"a": {"p99_ms": 1.25}}},
        "registry": {
            "series": [
                {"metric": "m", "tags": {"k": "v"}, "type": "trend", "hist": {"counts": {3: 4}}},
                {"metric": "c", "tags": {}, "type": "counter", "value": 2},
                {"metric": "n", "tags": {}, "type": "trend", "hist": {"counts": {}}},
            ],
            "types": {"m": "trend"},
            "contains": {"m": "time"},
        },
        "notes": ["x"],
    }
    for ln in (line, {**line, "registry": {"series": []}}, {k: v for k, v in line.items()}):
        assert encoded_tick(ln) == _dumps(ln)
    no_notes = {k: v for k, v in line.items() if k != "notes"}
    assert encoded_tick(no_notes) == _dumps(no_notes)


def test_rows_recorded_during_the_gentle_fold_are_folded_gently_too() -> None:
    """A generator behind its schedule records hundreds of rows while the tick's fold yields;
    before, those were left for the tick's own flush, in one piece (770 requests seen)."""
    from simulator.metrics import IntervalStats, IterationRecorder, tags_of
    from simulator.run.runner import fold_gently

    reg = Registry()
    it = IterationRecorder(reg, tags_of((("scenario", "s"),)), tags_of(()), IntervalStats())
    for i in range(50):
        it.record(100 + i, i)
    left: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: [it.record(7, 7) for _ in range(30)])  # during the first turn
        await fold_gently(reg)
        left.append(len(it.pending))

    asyncio.run(main())
    assert left == [0]
    lag = reg.merged("schedule_lag")
    assert lag is not None and lag.hist.count == 80  # type: ignore[union-attr]


def _two_scenarios() -> Any:
    def up(rate: int, id_start: int) -> dict[str, Any]:
        return {
            "executor": "constant-arrival-rate",
            "rate": rate,
            "duration": "1500ms",
            "pre_allocated_devices": 10,
            "device": {"chunk_bytes": 320, "id_start": id_start},
        }

    return parse_config({"scenarios": {"a": up(40, 1), "b": up(60, 11)}})


def test_the_ticks_pieces_each_get_a_loop_turn() -> None:
    """After the fold, the tick closed its point in one loop callback: every scenario's
    percentiles, the samplers (psutil), the worker's snapshot (deltas, figures, pickling and
    sending) and the stream: 4-7 ms of one worker's loop at 2,000 requests/s (busy), and
    every arrival due meanwhile started that late. Now each piece, and each step a tick hook
    returns, starts on a later loop turn than the one before: a marker scheduled when a
    piece runs has run before the next piece."""
    cfg = _two_scenarios()
    log: list[tuple[str, int]] = []  # (piece, markers run before it)
    marks = 0

    def piece(name: str) -> None:
        def mark() -> None:
            nonlocal marks
            marks += 1

        log.append((name, marks))
        asyncio.get_running_loop().call_soon(mark)

    class Probe:
        def __init__(self, name: str) -> None:
            self.name = name

        def sample(self) -> dict[str, float | None]:
            piece(self.name)
            return {"x": 1.0}

    def interval(name: str, t: float, span: float, iv: Any) -> None:
        piece(f"interval {name}")

    def plain_hook(env: Environment, point: dict[str, Any]) -> None:
        piece("plain hook")

    def stepped_hook(env: Environment, point: dict[str, Any]) -> Any:
        for i in range(3):
            piece(f"step {i}")
            yield

    async def main() -> Any:
        env = Environment(cfg, FakeTransport(), bank=build_bank(cfg))
        env.add_sampler("s1", Probe("sampler 1"))
        env.add_sampler("s2", Probe("sampler 2"))
        env.interval_hooks.append(interval)
        env.tick_hooks += [stepped_hook, plain_hook]
        env.progress = lambda env, point: piece("progress")
        return await env.run()

    result = vtime.run_virtual(main())
    assert result.registry.aggregate("http_reqs", {}, "count") == 150
    names = [n for n, _ in log]
    first = names[: names.index("progress") + 1]  # the first tick (the ticker's, not the last)
    plain = [m for n, m in log[: len(first)] if not n.startswith("step")]
    assert len(plain) == 6 and len(set(plain)) == 6  # before: all six in one loop turn
    assert first == [
        "interval a",
        "interval b",
        "sampler 1",
        "sampler 2",
        "step 0",
        "step 1",
        "step 2",
        "plain hook",
        "progress",
    ]
    seen = [m for _, m in log[: len(first)]]
    assert seen == list(range(seen[0], seen[0] + len(first)))  # one turn between each
    assert result.timeline[0]["s1.x"] == 1.0 and result.timeline[0]["scenarios"]["b"]["requests"]


def test_a_tick_cancelled_mid_close_still_closes_its_point() -> None:
    """The run stopping while the tick yields between its pieces: the point is finished in
    place (the statistics already taken are in it, every hook still sees it), then the last
    point follows; no request is missing from the timeline."""
    cfg = _two_scenarios()
    points: list[dict[str, Any]] = []
    finished_cancelled: list[bool] = []

    def hook(env: Environment, point: dict[str, Any]) -> Any:
        points.append(point)
        if len(points) == 1:
            env.cancel_inflight()  # the scenarios end: the supervisor cancels the ticker
            for _ in range(10):
                yield
            task = asyncio.current_task()
            finished_cancelled.append(task is not None and task.cancelling() > 0)

    async def main() -> Any:
        env = Environment(cfg, FakeTransport(), bank=build_bank(cfg))
        env.tick_hooks.append(hook)
        return await env.run()

    result = vtime.run_virtual(main())
    reqs = result.registry.aggregate("http_reqs", {}, "count")
    assert finished_cancelled == [True]  # the ticker was cancelled mid-close, then finished
    assert len(points) == 2 and points[0] is result.timeline[0]
    in_points = sum(p["scenarios"][s]["requests"] for p in result.timeline for s in ("a", "b"))
    assert in_points == reqs and reqs > 0


@pytest.mark.slow  # 1.9 s (a real worker for 1.2 s); the fast tier has the Environment's test
def test_a_workers_snapshot_is_built_over_several_loop_turns(
    http_sink: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's tick hook took the registry's deltas, read psutil, computed its start-lag
    p99 and pickled and sent the snapshot in one callback (~2.5 ms at 2,000 requests/s,
    busy). Now each is a step of the tick: the loop turns between them (the psutil sample
    and the figures shared one step, up to 1.8 ms of CPU, busy, until they were split)."""

    from simulator.run import runner, workers
    from simulator.run.monitoring import GeneratorSampler
    from simulator.run.workers import DeltaTracker, Snapshot

    url = http_sink()
    log: list[tuple[str, int]] = []
    marks = 0

    def piece(name: str) -> None:
        def mark() -> None:
            nonlocal marks
            marks += 1

        log.append((name, marks))
        asyncio.get_running_loop().call_soon(mark)

    real_take, real_figures = DeltaTracker.take, workers.schedule_figures

    def take(self: DeltaTracker) -> Any:
        piece("deltas")
        return real_take(self)

    def figures(*args: Any) -> Any:
        piece("figures")
        return real_figures(*args)

    real_sample = GeneratorSampler.sample

    def sample(self: GeneratorSampler) -> Any:
        piece("sample")
        return real_sample(self)

    monkeypatch.setattr(DeltaTracker, "take", take)
    monkeypatch.setattr(workers, "schedule_figures", figures)
    monkeypatch.setattr(GeneratorSampler, "sample", sample)
    # A tick woken late, or one of whose turns is long (> LONG_TURN, 20 ms), runs the rest at
    # once by design (in_turns: the loop is behind). A loaded machine's scheduling alone makes
    # such turns, so the steps are asserted with that fallback off (it has its own tests).
    monkeypatch.setattr(runner, "LONG_TURN", math.inf)

    def send(msg: Any) -> None:
        if isinstance(msg, Snapshot):
            piece("send")

    _run_one_worker(url, "1200ms", send)
    first = log[:4]  # the ticker's tick (the last one closes after the loop's work is done)
    assert [n for n, _ in first] == ["deltas", "sample", "figures", "send"], log
    # before: all in one turn; then the process sample and the figures shared one
    assert first[0][1] < first[1][1] < first[2][1] < first[3][1], log


@pytest.mark.slow  # a real worker, ~0.7 s: the fast tier stays under 60 s
def test_a_worker_tunes_its_collector_before_it_says_ready(
    http_sink: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector's set-up (a full collection of every module, the bank and the config:
    40-110 ms on a busy machine) ran after the go, which comes only 0.1 s before the first
    arrival: one of two workers at 4,000/s started 105 ms late, and its first 0.3 s of
    arrivals (2 % of the run) were late by 28 ms at the median. Then making the event loop
    (importing uvloop, 12-14 ms busy). Now both are done before the worker says Ready: at
    Ready the set-up objects are already frozen and the loop exists."""
    import gc

    from simulator.executors import runtime
    from simulator.run.workers import Ready

    url = http_sink()
    at_ready: list[tuple[int, int, int]] = []
    loops = 0
    real_new_loop = runtime.new_loop

    def new_loop() -> asyncio.AbstractEventLoop:
        nonlocal loops
        loops += 1
        return real_new_loop()

    monkeypatch.setattr(runtime, "new_loop", new_loop)

    def send(msg: Any) -> None:
        if isinstance(msg, Ready):
            at_ready.append((gc.get_threshold()[0], gc.get_freeze_count(), loops))

    before = gc.get_threshold()
    _run_one_worker(url, "200ms", send)
    assert len(at_ready) == 1
    threshold, frozen, made = at_ready[0]
    assert threshold == 50_000 and frozen > 0 and made == 1, at_ready
    assert loops == 1  # and it is the run's loop
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


WORKER_IMPORTS = """
import json, sys, time
from scfleet import api
from simulator.run.workers import Final, Go, Ready, WorkerJob, run_worker

seen = {}

class End:
    def send(self, msg):
        if isinstance(msg, Ready):
            seen["ready"] = set(sys.modules)
        elif isinstance(msg, Final):
            seen["final"] = set(sys.modules)

    def recv(self):
        return Go(time.time() + 0.05)

    def listen(self, loop, on_message):
        pass

    def unlisten(self):
        pass

cfg = api.load(sys.argv[1])
run_worker(End(), WorkerJob(0, 1, cfg, sys.argv[2], {}))
print(json.dumps(sorted(seen["final"] - seen["ready"])))
"""

PYTHON_DEVICES = """
[scenarios.s]
executor = "constant-arrival-rate"
rate = 10
duration = "1.3s"
pre_allocated_devices = 2
[scenarios.s.device]
kind = "python:quick.py:Quick"
"""

QUICK = """
from simulator.userdevice import Device


class Quick(Device):
    async def iteration(self) -> None:
        pass
"""


@pytest.mark.slow  # a worker process for 1.3 s (2.0-2.5 s): the fast tier stays under 60 s
def test_a_worker_imports_what_its_ticks_need_before_it_says_ready(
    http_sink: Callable[..., str], tmp_path: pathlib.Path
) -> None:
    """A worker of Python devices (no audio bank) imported numpy and 86 more modules in its
    first tick (146 ms of CPU, quiet): that tick closed 0.2 s late on a quiet machine and
    seconds late under load, so its point held more than its second and the next one less
    (test_workers_merge's test_a_worker_dropping_its_iterations_is_named_in_the_warning
    failed so, in CI too). A fresh interpreter, as a worker process is: nothing may be
    imported between Ready and Final."""
    import subprocess
    import sys

    (tmp_path / "quick.py").write_text(QUICK)
    (tmp_path / "run.toml").write_text(PYTHON_DEVICES)
    res = subprocess.run(
        [sys.executable, "-c", WORKER_IMPORTS, str(tmp_path / "run.toml"), http_sink()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def _run_one_worker(url: str, duration: str, send: Callable[[Any], None]) -> None:
    """A real worker (``run_worker``) of one, in this process, for a 5/s scenario of
    ``duration`` against ``url``: its coordinator's end is ``send`` and an immediate go."""
    import time

    from simulator.run.workers import Go, WorkerJob, run_worker

    class End:
        def send(self, msg: Any) -> None:
            send(msg)

        def recv(self) -> Any:
            return Go(time.time() + 0.05)

        def listen(self, loop: Any, on_message: Any) -> None:
            pass

        def unlisten(self) -> None:
            pass

    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 5,
                    "duration": duration,
                    "pre_allocated_devices": 2,
                    "device": {"chunk_bytes": 64},
                }
            },
        }
    )
    run_worker(End(), WorkerJob(0, 1, cfg, url, {}))


@pytest.mark.parametrize("outcomes", [1, 2])
def test_each_fold_step_folds_one_column_of_bounded_rows(
    outcomes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold step is one loop callback of the tick. Before: a request buffer's first step
    computed every row's outcome and folded two columns (the duration and the interval's
    histogram riding along: 2.1 ms of CPU at 4,750 rows, the longest step of a worker's tick
    at 9,500/s, busy), and a buffer was folded whole whatever its size. Now each step folds
    one column of at most FOLD_ROWS rows (made small here), and nothing is lost."""
    from simulator.metrics import IntervalStats, IterationRecorder, RequestRecorder, tags_of
    from simulator.metrics.recorders import RequestSample

    monkeypatch.setattr(recorders_mod, "FOLD_ROWS", 100, raising=False)
    real_fold = recorders_mod.fold_columns
    per_step: list[list[tuple[int, int]]] = [[]]  # (rows, columns) of each fold in each step

    def fold(hists: Any, matrix: Any) -> None:
        per_step[-1].append(matrix.shape)
        real_fold(hists, matrix)

    monkeypatch.setattr(recorders_mod, "fold_columns", fold)
    reg, iv = Registry(), IntervalStats()
    base = tags_of((("scenario", "s"), ("endpoint", "/a"), ("method", "POST")))
    req = RequestRecorder(reg, base, iv, tags_of((("scenario", "s"),)))
    it = IterationRecorder(reg, tags_of((("scenario", "s"),)), tags_of(()), iv)
    for i in range(250):
        status = 500 if outcomes == 2 and i % 5 == 0 else 200
        req.record(RequestSample(status, status != 200, 900 + i, 0, 10, 800, 90, 950, 10, 20))
        it.record(1000 + i, i)
    for _ in reg.fold_steps():
        per_step.append([])
    assert all(len(folds) <= 1 for folds in per_step), per_step
    assert all(n <= 100 and k == 1 for folds in per_step for n, k in folds), per_step
    assert iv.hist.count == 250 and iv.requests == 250 and iv.iterations == 250
    durations = reg.matching("http_req_duration")
    assert sum(d.hist.count for d in durations) == 250  # type: ignore[attr-defined]
    lag = reg.merged("schedule_lag")
    assert lag is not None and lag.hist.count == 250  # type: ignore[union-attr]


def test_a_loop_behind_its_schedule_still_closes_each_point_about_on_time() -> None:
    """A worker past its ceiling: the arrival driver catches up 1,000 starts a callback and
    every loop turn takes ~40 ms. The tick yields between its ~60 pieces, so before, a point
    due at 1 s closed at 2.7 s and the next not until the run's end (a worker at 1.5× its
    ceiling sent its coordinator no snapshot for the whole 10 s run: live figures and
    abort_on_fail blind). Now, after one long turn, the tick does the rest at once."""
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 200,
                    "duration": "4s",
                    "pre_allocated_devices": 20,
                    "device": {"chunk_bytes": 320},
                }
            },
        }
    )

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        end = loop.time() + 4.0

        def behind() -> None:  # a turn of a loop far behind: 40 ms of starts each time
            loop.now += 0.04  # type: ignore[attr-defined]
            if loop.time() < end:
                loop.call_soon(behind)

        loop.call_soon(behind)
        return await Environment(cfg, FakeTransport(), bank=build_bank(cfg)).run()

    result = vtime.run_virtual(main())
    closed = [p["t"] for p in result.timeline]
    assert len(closed) >= 4, closed  # before: [2.68, 4.04]
    for n, t in enumerate(closed[:3], start=1):
        assert n <= t < n + 0.5, closed
    reg = result.registry
    started = reg.aggregate("http_reqs", {}, "count")
    assert started and started + reg.aggregate("dropped_iterations", {}, "count") == 800
    assert sum(p["scenarios"]["up"]["requests"] for p in result.timeline) == started


def test_a_tick_in_a_loop_behind_costs_at_most_one_long_turn() -> None:
    """At 1.5x its ceiling a worker's loop turns took ~0.2 s at start-up (every device
    connects); its first tick woke 0.5 s late, then the gentle fold's rounds and the close
    each yielded one such turn before doing the rest at once: the snapshot left 1.5 s after
    its second and its coordinator's point 1 had closed empty. Now a tick that wakes late, or
    sees one long turn, does everything left at once, fold rounds included: each point is
    finished within the two turns its wake-up takes (asyncio resumes a task the turn after
    its timer)."""
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 200,
                    "duration": "4s",
                    "pre_allocated_devices": 20,
                    "device": {"chunk_bytes": 320},
                }
            },
        }
    )
    turn = 0.1  # every loop turn: a loop far behind its schedule

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        end = loop.time() + 4.5

        def behind() -> None:
            loop.now += turn  # type: ignore[attr-defined]
            if loop.time() < end:
                loop.call_soon(behind)

        loop.call_soon(behind)
        env = Environment(cfg, FakeTransport(), bank=build_bank(cfg))
        env.tick_hooks.append(lambda env, point: done.append(loop.time() - begin))
        begin = loop.time()  # the run's second 0 (or a little before)
        return await env.run()

    done: list[float] = []  # when each point was finished (a worker's snapshot sent)
    result = vtime.run_virtual(main())
    assert len(done) >= 4, done
    for n, t in enumerate(done[:3], start=1):
        assert n <= t <= n + 2 * turn + 1e-6, done  # before: [1.4, 2.4, 3.4, 4.4, 4.5]
    started = result.registry.aggregate("http_reqs", {}, "count")
    assert started and sum(p["scenarios"]["up"]["requests"] for p in result.timeline) == started
