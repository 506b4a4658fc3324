"""constant-arrival-rate: ``rate`` iterations per ``time_unit``, one every interval from 0."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Literal

from simulator.executors.base import ArrivalPlan, D, Drive, StageWindow, per_second

if TYPE_CHECKING:
    from simulator.executors.segment import Segment
    from simulator.executors.segmented import SegmentedArrival


class ConstantPlan:
    """The arrivals (``i * interval``) as an iterator that can also skip every arrival due
    by an offset in O(1) — for counting drops without visiting."""

    def __init__(self, ex: ConstantArrivalRate) -> None:
        self.interval = ex.time_unit / ex.rate  # the inverse of the rate per second
        self.count = math.ceil(ex.duration / self.interval - 1e-9)
        self.taken = 0

    def __iter__(self) -> ConstantPlan:
        return self

    def __next__(self) -> float:
        if self.taken >= self.count:
            raise StopIteration
        self.taken += 1
        return self.offset(self.taken - 1)

    def offset(self, i: int) -> float:
        """Arrival ``i``'s offset, without visiting the others (a segment's plan computes
        only its own: simulator.executors.segmented)."""
        return i * self.interval

    def due(self, offset: float) -> int:
        """How many arrivals are due at or before ``offset``."""
        return min(math.floor(offset / self.interval + 1e-9) + 1, self.count)

    def skip_until(self, offset: float) -> int:
        """Consume the arrivals due at or before ``offset``; how many there were."""
        n = max(self.due(offset) - self.taken, 0)
        self.taken += n
        return n


@dataclass(frozen=True)
class ConstantArrivalRate:
    rate: float
    time_unit: float
    duration: float
    pre_allocated_devices: int
    max_devices: int
    kind: Literal["constant-arrival-rate"] = "constant-arrival-rate"
    #: an open model (iterations arrive on schedule) rather than looping VUs
    open_model: ClassVar[bool] = True
    #: it ramps through ``stages``
    ramps: ClassVar[bool] = False
    #: the key that gives its length in a scenario file (None: the stages do)
    duration_key: ClassVar[str | None] = "duration"

    def total_duration(self) -> float:
        return self.duration

    def device_bound(self) -> int:
        return self.max_devices

    def pre_allocated(self) -> int:
        return self.pre_allocated_devices

    def mean_rate(self) -> float:
        return per_second(self.rate, self.time_unit)

    def expected_iterations(self) -> int:
        return math.ceil(per_second(self.duration * self.rate, self.time_unit) - 1e-9)

    def iteration_bound(self, think_time: float) -> int:
        return self.expected_iterations()

    def arrival_plan(self) -> ArrivalPlan:
        plan = ConstantPlan(self)
        return plan, plan.skip_until

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        pre = self.pre_allocated_devices
        return [(0.0, pre, self.max_devices - pre)]

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        r = self.mean_rate()
        return [StageWindow(scenario, 0, start, start + self.duration, r, r, "iters/s")]

    def describe(self, duration: str) -> str:
        return f"{self.mean_rate():g} iterations/s for {duration}"

    def scaled(self, factor: float) -> ConstantArrivalRate:
        return replace(self, duration=self.duration * factor)

    def for_segment(self, segment: Segment) -> SegmentedArrival:
        """This executor's share of a run split into execution segments."""
        from simulator.executors.segmented import SegmentedArrival

        return SegmentedArrival(self, segment)

    async def drive(self, run: Drive[D]) -> None:
        from simulator.executors.arrival import DevicePool, drive_arrival

        pool = DevicePool(run.behaviour.make_device, self.pre_allocated_devices, self.max_devices)
        await drive_arrival(self, run, pool)
