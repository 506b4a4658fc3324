"""The arrival driver's pool growth that any bound on devices in flight must keep (issue 12,
past the ceiling).

A bound that stops a saturated generator from growing its pool to ``max_devices`` (k6 drops
when no VU is free) must not drop arrivals a healthy run needs: a slow target's (the loop idle,
iterations long) or the backlog after the hypervisor held the process. Two such rules were
tried and not landed (sat14: growth only while the arrival is at most 20 ms late; only while no
request waited 50 ms for a connection): at 1.5x the ceiling the loop kept its schedule (2 ms
late) while the pool still filled, so neither bounded it. These are the cases they were held to.

On virtual time: a start advances the clock by its ``burn`` (the generator's CPU) and the
iteration ends ``latency`` later (the target's answer)."""

from __future__ import annotations

import asyncio
from typing import Any

import vtime

from simulator.config import ConstantArrivalRate
from simulator.executors import DevicePool, run_arrival_rate
from simulator.executors.arrival import MAX_LATE
from simulator.metrics.registry import IntervalStats, Registry
from simulator.run.runner import ScenarioEvents


class _Iterations:
    """Each start burns ``burn`` s of the loop's clock; the iteration ends ``latency`` s later.
    ``stall``: a one-off extra hold at the start of that 0-based arrival."""

    def __init__(self, burn: float, latency: float, stall: tuple[int, float] = (-1, 0.0)):
        self.burn, self.latency, self.stall = burn, latency, stall
        self.starts = 0

    def start(self, dev: Any, scheduled: float, finished: Any) -> None:
        loop = asyncio.get_running_loop()
        held = self.stall[1] if self.starts == self.stall[0] else 0.0
        self.starts += 1
        loop.now += self.burn + held  # type: ignore[attr-defined]
        loop.call_later(self.latency, finished)

    async def abandon(self) -> None:
        pass


def _run(
    ex: ConstantArrivalRate, it: _Iterations, pre: int, maximum: int
) -> tuple[DevicePool[int], ScenarioEvents, int]:
    """Drive ``ex`` on virtual time: (the pool after the run, its events, the plan's size)."""
    loop = vtime.VirtualTimeLoop()
    events = ScenarioEvents(Registry(), "s", IntervalStats())
    pool = DevicePool(lambda i: i, pre, maximum)

    async def main() -> None:
        await run_arrival_rate(
            ex,
            start=loop.time() + 0.5,
            pool=pool,
            starter=it,
            events=events,
            stop=asyncio.Event(),
            graceful_stop=30.0,
        )

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return pool, events, sum(1 for _ in ex.arrival_plan()[0])


def test_a_slow_target_on_a_healthy_loop_grows_the_pool_and_drops_nothing() -> None:
    """The target answers after 2 s, the loop is idle: 200/s needs ~400 devices in flight,
    and the pool grows from 4 to them (the loop keeps its schedule), dropping nothing."""
    ex = ConstantArrivalRate(200, 1.0, 5.0, 4, 1000)
    it = _Iterations(burn=0.0001, latency=2.0)
    pool, events, planned = _run(ex, it, 4, 1000)
    assert events.interval.dropped == 0 and it.starts == planned
    assert 380 <= pool.allocated <= 420, pool.allocated


def test_a_healthy_loop_held_mid_run_grows_the_pool_to_catch_up_and_drops_nothing() -> None:
    """A healthy run (starts far cheaper than the 1 ms spacing, answers after 5 ms, so ~5
    devices in flight) that the hypervisor holds for 0.9 s mid-run: the ~900 arrivals due
    meanwhile start late and at once, on new devices (the loop is behind only because it was
    held), and none drops. A rule that grew the pool only while the loop kept its schedule
    (20 ms) dropped them: they are up to 0.9 s late."""
    ex = ConstantArrivalRate(1000, 1.0, 6.0, 8, 4000)
    it = _Iterations(burn=0.0001, latency=0.005, stall=(2000, MAX_LATE - 0.1))
    pool, events, planned = _run(ex, it, 8, 4000)
    assert events.interval.dropped == 0 and it.starts == planned
    assert pool.allocated >= 800, pool.allocated  # grown for the backlog


def test_repeated_short_stalls_in_a_healthy_run_drop_nothing() -> None:
    """The hypervisor here takes a vCPU for ~100 ms at a time, several times in a row: each
    hold is a stall the loop catches up from, so the pool grows and nothing drops."""
    ex = ConstantArrivalRate(1000, 1.0, 4.0, 8, 4000)
    holds = {500: 0.1, 600: 0.1, 700: 0.1, 800: 0.1, 2500: 0.3}

    class Held(_Iterations):
        def start(self, dev: Any, scheduled: float, finished: Any) -> None:
            asyncio.get_running_loop().now += holds.get(self.starts, 0.0)  # type: ignore[attr-defined]
            super().start(dev, scheduled, finished)

    it = Held(burn=0.0001, latency=0.005)
    _, events, planned = _run(ex, it, 8, 4000)
    assert events.interval.dropped == 0 and it.starts == planned
