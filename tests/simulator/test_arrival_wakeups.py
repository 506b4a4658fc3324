"""Issue 12 (auto's CPU per request): a worker running its share of an arrival rate woke as
often per second as one worker running the whole rate, so two workers woke the machine twice
as often for the same total (each wake-up costs tens of µs on a VM). A local worker of N waits
at least its arrival quantum between two wake-ups of the schedule; nothing starts before its
schedule and nothing is skipped, and the lateness this adds is bounded by the quantum.

Wake-ups are counted deterministically: on virtual time, each time the loop sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import vtime

from simulator.config import ConstantArrivalRate, RunConfig
from simulator.executors import DevicePool, run_arrival_rate
from simulator.executors.runtime import arrival_quantum
from simulator.executors.segment import SegmentSequence
from simulator.metrics.registry import IntervalStats, Registry
from simulator.run.runner import ScenarioEvents


class _CountingSelector(vtime._Selector):  # type: ignore[misc,name-defined]
    sleeps = 0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(timeout)
        if not ready and timeout is not None and timeout > 0:
            self.sleeps += 1  # the loop slept and woke: one wake-up
        return ready


class _CountingLoop(vtime.VirtualTimeLoop):  # type: ignore[misc,name-defined]
    def __init__(self) -> None:
        self.counter = _CountingSelector()
        asyncio.SelectorEventLoop.__init__(self, selector=self.counter)
        self.counter.loop = self
        self.now = 1000.0


class _Recorder:
    """Starts iterations that end at once and records (scheduled, actual) start times."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float]] = []

    def start(self, dev: Any, scheduled: float, finished: Any) -> None:
        self.starts.append((scheduled, asyncio.get_running_loop().time()))
        finished()

    async def abandon(self) -> None:
        pass


def _drive(ex: Any, quantum: float) -> tuple[int, _Recorder, ScenarioEvents]:
    """Run ``ex`` on virtual time; (wake-ups during the schedule, starts, events)."""
    loop = _CountingLoop()
    rec, events = _Recorder(), ScenarioEvents(Registry(), "s", IntervalStats())

    async def main() -> None:
        await run_arrival_rate(
            ex,
            start=loop.time() + 0.5,
            pool=DevicePool(lambda i: i, 4, 4),
            starter=rec,
            events=events,
            stop=asyncio.Event(),
            graceful_stop=0.0,
            quantum=quantum,
        )

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return loop.counter.sleeps, rec, events


def test_the_quantum_of_a_local_worker_scales_with_the_worker_count() -> None:
    assert arrival_quantum(1) == 0.0  # one process: as often as its loop's clock allows
    assert arrival_quantum(2) == pytest.approx(0.002)
    assert arrival_quantum(64) == pytest.approx(0.004)  # bounded: the lateness it may add


@pytest.mark.parametrize("parts", [2, 3])
def test_a_worker_of_n_wakes_at_most_once_per_quantum_and_starts_every_arrival(parts: int) -> None:
    """Segment 0 of ``parts`` of 4,000/s for 2 s: at most 1,000/parts wake-ups per second of
    schedule (all the workers together: about one process's 1,000/s at uvloop's 1 ms clock);
    before, the share woke for each of its arrivals (4,000/parts per second)."""
    whole = ConstantArrivalRate(4000, 1.0, 2.0, 4, 4)
    share = whole.for_segment(SegmentSequence.even(parts).segment(0))
    q = arrival_quantum(parts)
    wakes, rec, events = _drive(share, q)
    due = len(rec.starts)
    assert (
        due == round(4000 * 2.0 / parts) and events.interval.dropped == 0
    )  # nothing skipped or dropped
    # the schedule's wake-ups (+ 1 for the start, + 1 for the end of the duration)
    assert wakes <= 2.0 * 1000 / parts + 2, f"{wakes} wake-ups for {due} arrivals"
    lags = [actual - scheduled for scheduled, actual in rec.starts]
    assert min(lags) >= 0  # nothing starts before its schedule
    assert max(lags) <= q + 1e-9  # and no arrival starts more than the quantum late


def test_without_a_quantum_every_arrival_starts_on_time() -> None:
    """One worker (quantum 0) keeps the old behaviour on a loop with an exact clock."""
    wakes, rec, _ = _drive(ConstantArrivalRate(1000, 1.0, 1.0, 4, 4), 0.0)
    assert len(rec.starts) == 1000
    assert all(actual == scheduled for scheduled, actual in rec.starts)
    assert wakes >= 1000


class _Spy:
    """An executor that records the hand-off it is driven with, then drives the real one."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.quanta: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def drive(self, run: Any) -> None:
        self.quanta.append(run.quantum)
        await self.real.drive(run)


def _small_run(duration: str) -> RunConfig:
    """20 arrivals a second for ``duration`` on 2 devices of 64-byte uploads."""
    from simulator.config import parse_config

    return parse_config(
        {
            "scenarios": {
                "a": {
                    "executor": "constant-arrival-rate",
                    "rate": 20,
                    "duration": duration,
                    "pre_allocated_devices": 2,
                    "device": {"kind": "iot_upload", "chunk_bytes": 64},
                }
            },
            "audio": {"profiles": 1, "seconds": 1},
        }
    )


@pytest.mark.timeout(60)
def test_a_local_worker_of_two_drives_its_schedule_with_its_quantum(tmp_path: Any) -> None:
    """The seam: the coordinator gives each local worker the quantum of their count, and the
    worker's run hands it to the driver."""
    from dataclasses import replace

    from simulator.http import FakeTransport
    from simulator.run.runner import Environment
    from simulator.run.workers import WorkerPool

    cfg = _small_run("0.3s")
    jobs = WorkerPool(cfg, "", {}, 2, parts_dir=tmp_path)._jobs()
    assert [j.arrival_quantum for j in jobs] == [arrival_quantum(2)] * 2
    assert WorkerPool(cfg, "", {}, 1, parts_dir=tmp_path)._jobs()[0].arrival_quantum == 0.0

    spy = _Spy(cfg.scenarios[0].executor)
    cfg = replace(cfg, scenarios=(replace(cfg.scenarios[0], executor=spy),))
    env = Environment(cfg, FakeTransport(keep=False), bank=None, tick=0.2)
    env.arrival_quantum = jobs[0].arrival_quantum  # what run_worker sets from its job
    asyncio.run(env.run())
    assert spy.quanta == [arrival_quantum(2)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("quantum_of", "expected"), [("", 0.0), ("2", arrival_quantum(2))])
def test_a_one_process_run_wakes_as_a_worker_of_n_when_the_bench_asks(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    http_sink: Any,
    quantum_of: str,
    expected: float,
) -> None:
    """bench_ceiling.py's share run (1 worker at the rate ÷ N) must wake for its arrivals as
    each of ``auto``'s N workers does, or its comparison with them means nothing: a one-process
    run takes the quantum of a worker of ``$SCFLEET_BENCH_QUANTUM_OF``, and none without it.
    Before, a one-process run always drove its schedule with quantum 0."""
    from dataclasses import replace

    from simulator.session import GivenTarget, run_session

    cfg = _small_run("0.2s")
    spy = _Spy(cfg.scenarios[0].executor)
    cfg = replace(cfg, scenarios=(replace(cfg.scenarios[0], executor=spy),))
    monkeypatch.setenv("SCFLEET_BENCH_QUANTUM_OF", quantum_of)  # bench_ceiling.py's hook
    result = run_session(cfg, GivenTarget(http_sink()), tmp_path, {})
    assert result.error is None
    assert spy.quanta == [pytest.approx(expected)]


def test_a_bad_quantum_of_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from scfleet_core.errors import ScfleetError
    from simulator.executors.runtime import QUANTUM_OF_ENV, one_process_quantum

    monkeypatch.setenv(QUANTUM_OF_ENV, "two")
    with pytest.raises(ScfleetError, match=f"^{QUANTUM_OF_ENV}: expected a worker count"):
        one_process_quantum()
