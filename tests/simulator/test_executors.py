"""Executor scheduling on a virtual clock: counts, timing, dropped and interrupted iterations."""

from __future__ import annotations

import asyncio

import pytest
import vtime

from simulator.config import (
    ConstantArrivalRate,
    ConstantVUs,
    PerVUIterations,
    RampingArrivalRate,
    RampingVUs,
    Stage,
)
from simulator.executors import (
    DevicePool,
    TaskStarter,
    arrival_offsets,
    expected_iterations,
    run_arrival_rate,
    run_vus,
    vu_changes,
)

run_virtual = vtime.run_virtual


class Dev:
    def __init__(self, index: int) -> None:
        self.index = index


class Events:
    def __init__(self) -> None:
        self.dropped_n = 0
        self.interrupted_n = 0
        self.active_seen: list[int] = []
        self.cap = 0

    unreached_n = 0  # arrivals of the plan neither started nor dropped (stopped)

    def dropped(self, count: int = 1, *, pool_full: bool = False) -> None:
        self.dropped_n += count

    def unreached(self, count: int) -> None:
        self.unreached_n += count

    def active(self, count: int) -> None:
        self.active_seen.append(count)

    def interrupted(self, count: int) -> None:
        self.interrupted_n += count

    def capacity(self, count: int) -> None:
        self.cap = count


def test_constant_rate_offsets_are_evenly_spaced_from_zero() -> None:
    ex = ConstantArrivalRate(
        rate=10, time_unit=1, duration=2, pre_allocated_devices=1, max_devices=1
    )
    offs = list(arrival_offsets(ex))
    assert len(offs) == 20 == expected_iterations(ex)
    assert offs[0] == 0
    assert all(abs((b - a) - 0.1) < 1e-9 for a, b in zip(offs, offs[1:], strict=False))


def test_time_unit_scales_rate() -> None:
    ex = ConstantArrivalRate(
        rate=30, time_unit=60, duration=120, pre_allocated_devices=1, max_devices=1
    )
    assert len(list(arrival_offsets(ex))) == 60


def test_ramping_rate_integral_and_monotonic() -> None:
    ex = RampingArrivalRate(
        start_rate=0,
        time_unit=1,
        pre_allocated_devices=1,
        max_devices=1,
        stages=(Stage(10, 100), Stage(10, 100), Stage(10, 0)),
    )
    offs = list(arrival_offsets(ex))
    # area: 500 + 1000 + 500
    assert len(offs) == 2000 == expected_iterations(ex)
    assert offs == sorted(offs)
    # k6: iteration i starts when the integral reaches i, so a stage's last one is at its end
    first_stage = [o for o in offs if o <= 10]
    assert len(first_stage) == 500
    # during the ramp-up the density grows: fewer starts in (0,5] than in (5,10]
    assert sum(o <= 5 for o in offs) < sum(5 < o <= 10 for o in offs)
    assert sum(10 < o <= 20 for o in offs) == 1000


def test_ramping_rate_seed_levels() -> None:
    ex = RampingArrivalRate(
        start_rate=50,
        time_unit=1,
        pre_allocated_devices=1,
        max_devices=1,
        stages=(Stage(10, 50), Stage(0, 100), Stage(10, 100), Stage(0, 200), Stage(10, 200)),
    )
    offs = list(arrival_offsets(ex))
    assert sum(0 < o <= 10 for o in offs) == 500
    assert sum(10 < o <= 20 for o in offs) == 1000
    assert sum(20 < o <= 30 for o in offs) == 2000


def test_vu_changes_ramp_up_and_down() -> None:
    ex = RampingVUs(
        start_vus=0, graceful_ramp_down=1, stages=(Stage(10, 5), Stage(10, 5), Stage(5, 0))
    )
    ch = vu_changes(ex)
    assert ch[0] == (0.0, 0)
    assert ch[1] == (2.0, 1)
    assert (10.0, 5) in ch
    assert ch[-1] == (25.0, 0)
    assert [n for _, n in ch] == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0]


def test_arrival_rate_does_not_wait_for_responses() -> None:
    """A slow server must not slow the schedule: 50/s for 4 s with 1 s latency = 200 starts."""
    ex = ConstantArrivalRate(
        rate=50, time_unit=1, duration=4, pre_allocated_devices=10, max_devices=100
    )
    starts: list[float] = []
    ev = Events()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def iterate(dev: Dev, scheduled: float) -> None:
            starts.append(loop.time() - t0)
            assert abs(loop.time() - scheduled) < 1e-6
            await asyncio.sleep(1.0)

        pool = DevicePool(Dev, 10, 100)
        await run_arrival_rate(
            ex,
            start=t0,
            pool=pool,
            starter=TaskStarter(iterate),
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=5,
        )
        assert 50 <= pool.allocated <= 51  # 50 in flight (+1 if a finish ties a start)
        assert pool.busy == 0

    run_virtual(main())
    assert len(starts) == 200
    assert ev.dropped_n == 0
    assert abs(starts[-1] - 3.98) < 1e-6


def test_arrival_rate_drops_when_no_device_is_free() -> None:
    """k6 semantics: with max 5 devices and 1 s latency at 20/s, only 5 per second start."""
    ex = ConstantArrivalRate(
        rate=20, time_unit=1, duration=3, pre_allocated_devices=5, max_devices=5
    )
    ev = Events()
    started = []

    async def main() -> None:
        async def iterate(dev: Dev, scheduled: float) -> None:
            started.append(scheduled)
            await asyncio.sleep(1.0)

        await run_arrival_rate(
            ex,
            start=asyncio.get_running_loop().time(),
            pool=DevicePool(Dev, 5, 5),
            starter=TaskStarter(iterate),
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=5,
        )

    run_virtual(main())
    assert len(started) + ev.dropped_n == 60
    assert len(started) == 15
    assert ev.dropped_n == 45


def test_graceful_stop_interrupts_long_iterations() -> None:
    ex = ConstantArrivalRate(
        rate=1, time_unit=1, duration=2, pre_allocated_devices=5, max_devices=5
    )
    ev = Events()
    finished = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def iterate(dev: Dev, scheduled: float) -> None:
            await asyncio.sleep(100)
            finished.append(dev)

        await run_arrival_rate(
            ex,
            start=t0,
            pool=DevicePool(Dev, 5, 5),
            starter=TaskStarter(iterate),
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=3,
        )
        return loop.time() - t0

    took = run_virtual(main())
    assert ev.interrupted_n == 2
    assert not finished
    assert abs(took - 5.0) < 0.01  # 2 s schedule + 3 s graceful stop


def test_stop_event_ends_schedule_early() -> None:
    ex = ConstantArrivalRate(
        rate=10, time_unit=1, duration=60, pre_allocated_devices=5, max_devices=5
    )
    ev = Events()
    count = 0

    async def main() -> None:
        nonlocal count
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(2.05, stop.set)

        async def iterate(dev: Dev, scheduled: float) -> None:
            nonlocal count
            count += 1

        await run_arrival_rate(
            ex,
            start=loop.time(),
            pool=DevicePool(Dev, 5, 5),
            starter=TaskStarter(iterate),
            events=ev,
            stop=stop,
            graceful_stop=30,
        )

    run_virtual(main())
    assert 20 <= count <= 22


@pytest.mark.parametrize("think", [0.0, 0.5])
def test_constant_vus_closed_model(think: float) -> None:
    ex = ConstantVUs(vus=4, duration=10)
    ev = Events()
    per_dev: dict[int, int] = {}

    async def main() -> None:
        async def iterate(dev: Dev, scheduled: float) -> None:
            per_dev[dev.index] = per_dev.get(dev.index, 0) + 1
            await asyncio.sleep(0.5 + think)  # think time is the iteration's own last step

        await run_vus(
            ex,
            start=asyncio.get_running_loop().time(),
            make_device=Dev,
            iterate=iterate,
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=1,
        )

    run_virtual(main())
    assert sorted(per_dev) == [0, 1, 2, 3]
    expected = 20 if think == 0 else 10
    assert all(abs(n - expected) <= 1 for n in per_dev.values()), per_dev
    assert ev.cap == 4


def test_ramping_vus_follows_stages() -> None:
    ex = RampingVUs(
        start_vus=0, graceful_ramp_down=0.5, stages=(Stage(5, 5), Stage(5, 5), Stage(5, 0))
    )
    ev = Events()
    concurrent = 0
    samples: list[tuple[float, int]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def iterate(dev: Dev, scheduled: float) -> None:
            nonlocal concurrent
            concurrent += 1
            samples.append((loop.time() - t0, concurrent))
            try:
                await asyncio.sleep(0.2)
            finally:
                concurrent -= 1

        await run_vus(
            ex,
            start=t0,
            make_device=Dev,
            iterate=iterate,
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=1,
        )

    run_virtual(main())
    assert max(c for _, c in samples) == 5
    assert all(c <= 2 for t, c in samples if t < 2.0)
    assert any(c == 5 for t, c in samples if 5 <= t < 10)
    assert all(c <= 2 for t, c in samples if t > 13.1)


def test_per_vu_iterations_runs_exact_count() -> None:
    ex = PerVUIterations(vus=3, iterations=7, max_duration=60)
    ev = Events()
    per_dev: dict[int, int] = {}

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def iterate(dev: Dev, scheduled: float) -> None:
            per_dev[dev.index] = per_dev.get(dev.index, 0) + 1
            await asyncio.sleep(0.1)

        await run_vus(
            ex,
            start=t0,
            make_device=Dev,
            iterate=iterate,
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=1,
        )
        return loop.time() - t0

    took = run_virtual(main())
    assert per_dev == {0: 7, 1: 7, 2: 7}
    assert took < 1.0  # ends when the iterations are done, not at max_duration
