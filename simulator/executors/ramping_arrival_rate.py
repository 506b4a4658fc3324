"""ramping-arrival-rate: the rate ramps linearly through stages; iteration i (from 1) is due
when the integral of the rate reaches i (k6), so a ramp from 0 starts nothing at 0."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Literal

from simulator.executors.base import (
    ArrivalPlan,
    D,
    Drive,
    Stage,
    StageWindow,
    per_second,
    ramp_windows,
)

if TYPE_CHECKING:
    from simulator.executors.segment import Segment
    from simulator.executors.segmented import SegmentedArrival


def _none_skipped(offset: float) -> int:
    return 0


@dataclass(frozen=True)
class RampingArrivalRate:
    start_rate: float
    time_unit: float
    stages: tuple[Stage, ...]
    pre_allocated_devices: int
    max_devices: int
    kind: Literal["ramping-arrival-rate"] = "ramping-arrival-rate"
    #: an open model (iterations arrive on schedule) rather than looping VUs
    open_model: ClassVar[bool] = True
    #: it ramps through ``stages``
    ramps: ClassVar[bool] = True
    #: the key that gives its length in a scenario file (None: the stages do)
    duration_key: ClassVar[str | None] = None

    def total_duration(self) -> float:
        return sum(s.duration for s in self.stages)

    def device_bound(self) -> int:
        return self.max_devices

    def pre_allocated(self) -> int:
        return self.pre_allocated_devices

    def _integral(self) -> float:
        """Iterations the schedule integrates to (stages ramp linearly)."""
        total, r0 = 0.0, self.start_rate
        for s in self.stages:
            total += per_second((r0 + s.target) / 2 * s.duration, self.time_unit)
            r0 = s.target
        return total

    def mean_rate(self) -> float:
        dur = self.total_duration()
        return self._integral() / dur if dur > 0 else 0.0

    def peak_rate(self) -> float:
        return per_second(max(s.target for s in self.stages), self.time_unit)

    def expected_iterations(self) -> int:
        return math.floor(self._integral() + 1e-9)

    def iteration_bound(self, think_time: float) -> int:
        return self.expected_iterations()

    def arrival_offsets(self) -> Iterator[float]:
        """Offsets (s from scenario start) at which iterations are due, lazily, in order."""
        done = 0.0  # iterations integrated before the current stage
        t0 = 0.0
        r0 = per_second(self.start_rate, self.time_unit)
        i = 1  # k6: iteration i is due when the integral reaches i
        for stage in self.stages:
            r1 = per_second(stage.target, self.time_unit)
            d = stage.duration
            if d <= 0:
                r0 = r1
                continue
            a = (r1 - r0) / (2 * d)
            total = done + r0 * d + a * d * d
            while i <= total + 1e-9:
                need = i - done
                if a == 0:
                    tau = need / r0
                else:
                    disc = max(r0 * r0 + 4 * a * need, 0.0)
                    denom = r0 + math.sqrt(disc)
                    tau = 2 * need / denom if denom > 0 else math.sqrt(need / a)
                yield t0 + min(max(tau, 0.0), d)
                i += 1
            done = total
            t0 += d
            r0 = r1

    def arrival_plan(self) -> ArrivalPlan:
        return iter(self.arrival_offsets()), _none_skipped

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        pre = self.pre_allocated_devices
        return [(0.0, pre, self.max_devices - pre)]

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        first = per_second(self.start_rate, self.time_unit)
        return ramp_windows(scenario, start, first, self.stages, 1 / self.time_unit, "iters/s")

    def describe(self, duration: str) -> str:
        return (
            f"up to {self.peak_rate():g} iterations/s for {duration} over {len(self.stages)} stages"
        )

    def scaled(self, factor: float) -> RampingArrivalRate:
        return replace(
            self, stages=tuple(replace(s, duration=s.duration * factor) for s in self.stages)
        )

    def for_segment(self, segment: Segment) -> SegmentedArrival:
        """This executor's share of a run split into execution segments."""
        from simulator.executors.segmented import SegmentedArrival

        return SegmentedArrival(self, segment)

    async def drive(self, run: Drive[D]) -> None:
        from simulator.executors.arrival import DevicePool, drive_arrival

        pool = DevicePool(run.behaviour.make_device, self.pre_allocated_devices, self.max_devices)
        await drive_arrival(self, run, pool)
