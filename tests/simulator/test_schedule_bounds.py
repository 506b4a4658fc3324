"""Issue 10 items 6 and 7: the scheduling callback never does unbounded work, and an exception in
it ends the schedule (and the run, with an error) instead of leaving the run waiting forever."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from simulator.config import ConstantArrivalRate, parse_config
from simulator.executors import DevicePool, run_arrival_rate
from simulator.http import FakeTransport
from simulator.run.runner import Environment


class _Events:
    def __init__(self) -> None:
        self.drops = 0
        self.interrupts = 0

    unreached_n = 0  # arrivals of the plan neither started nor dropped (stopped)

    def dropped(self, count: int = 1, *, pool_full: bool = False) -> None:
        self.drops += count

    def unreached(self, count: int) -> None:
        self.unreached_n += count

    def active(self, count: int) -> None:
        pass

    def interrupted(self, count: int) -> None:
        self.interrupts += count

    def capacity(self, count: int) -> None:
        pass


class _Dev:
    def __init__(self, index: int) -> None:
        self.index = index


class _Holder:
    """Starts iterations that never finish (every device stays busy), or raises on the n-th."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.started = 0
        self.fail_at = fail_at

    def start(self, dev: Any, scheduled: float, finished: Any) -> None:
        self.started += 1
        if self.fail_at is not None and self.started >= self.fail_at:
            "设备".encode("latin-1")  # what a non-latin-1 device ID header did

    async def abandon(self) -> None:
        pass


@pytest.mark.timeout(60)
def test_an_absurdly_dense_schedule_never_holds_the_loop() -> None:
    """1e12 per microsecond (the parser refuses it; built directly here): the callback yields
    every MAX_PER_CALLBACK arrivals, so a stop 0.3 s later is honoured at once."""
    ex = ConstantArrivalRate(1e12, 1e-6, 5.0, 1, 1)
    events = _Events()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.call_later(0.3, stop.set)
        t0 = time.monotonic()
        await asyncio.wait_for(
            run_arrival_rate(
                ex,
                start=loop.time(),
                pool=DevicePool(_Dev, 1, 1),
                starter=_Holder(),
                events=events,
                stop=stop,
                graceful_stop=0.0,
            ),
            10,
        )
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert took < 5, f"the stop took {took:.1f}s to be honoured"
    assert events.drops > 1000  # it did schedule (and drop) arrivals meanwhile


@pytest.mark.timeout(60)
def test_an_exception_in_the_scheduling_callback_ends_the_schedule() -> None:
    ex = ConstantArrivalRate(100, 1.0, 30.0, 5, 5)
    events = _Events()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(
            run_arrival_rate(
                ex,
                start=loop.time(),
                pool=DevicePool(_Dev, 5, 5),
                starter=_Holder(fail_at=3),
                events=events,
                stop=asyncio.Event(),
                graceful_stop=0.0,
            ),
            10,
        )

    with pytest.raises(UnicodeEncodeError):
        asyncio.run(main())
    assert events.interrupts == 2  # the two started before it are counted as interrupted


@pytest.mark.timeout(60)
def test_a_run_whose_requests_cannot_be_built_ends_with_an_error() -> None:
    """The whole run: a scenario whose callback raises ends the run early with one line."""
    cfg = parse_config(
        {
            "scenarios": {
                "a": {
                    "executor": "constant-arrival-rate",
                    "rate": 20,
                    "duration": "60s",
                    "pre_allocated_devices": 2,
                    "device": {"kind": "iot_upload", "chunk_bytes": 64},
                }
            }
        }
    )
    env = Environment(cfg, FakeTransport(keep=False), bank=None, tick=0.2)  # no audio: raises
    t0 = time.monotonic()
    result = asyncio.run(env.run())
    assert time.monotonic() - t0 < 10
    assert result.error and result.error.startswith("scenario a failed: AttributeError")
    assert "\n" not in result.error


@pytest.mark.timeout(120)
def test_drops_of_a_constant_rate_are_counted_arithmetically() -> None:
    """1e8 arrivals in 1 s and one busy device: visiting each would take minutes; every one
    is still counted, exactly (all but the first are dropped)."""
    ex = ConstantArrivalRate(1e8, 1.0, 1.0, 1, 1)
    events = _Events()
    holder = _Holder()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        await asyncio.wait_for(
            run_arrival_rate(
                ex,
                start=loop.time(),
                pool=DevicePool(_Dev, 1, 1),
                starter=holder,
                events=events,
                stop=asyncio.Event(),
                graceful_stop=0.0,
            ),
            60,
        )
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert took < 10, f"{took:.1f}s"
    assert holder.started == 1
    assert events.drops == 100_000_000 - 1
