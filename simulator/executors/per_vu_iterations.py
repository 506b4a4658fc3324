"""per-vu-iterations: each device runs a fixed number of iterations, within ``max_duration``;
what a device has not started by then is dropped (k6)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Literal

from simulator.executors.base import Drive, StageWindow

if TYPE_CHECKING:
    from simulator.executors.segment import Segment
    from simulator.executors.segmented import SegmentedVUs


@dataclass(frozen=True)
class PerVUIterations:
    vus: int
    iterations: int
    max_duration: float
    kind: Literal["per-vu-iterations"] = "per-vu-iterations"
    #: an open model (iterations arrive on schedule) rather than looping VUs
    open_model: ClassVar[bool] = False
    #: it ramps through ``stages``
    ramps: ClassVar[bool] = False
    #: the key that gives its length in a scenario file (None: the stages do)
    duration_key: ClassVar[str | None] = "max_duration"

    def total_duration(self) -> float:
        return self.max_duration

    def device_bound(self) -> int:
        return self.vus

    def pre_allocated(self) -> None:
        return None

    def mean_rate(self) -> None:
        return None

    def expected_iterations(self) -> None:
        return None

    def iteration_bound(self, think_time: float) -> int:
        return self.vus * self.iterations

    def iteration_limit(self) -> int | None:
        return self.iterations

    def ramp_down_grace(self, graceful_stop: float) -> float:
        return graceful_stop

    def vu_changes(self) -> list[tuple[float, int]]:
        return [(0.0, self.vus)]

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        return [(0.0, self.vus, 0)]

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        n = self.vus
        return [StageWindow(scenario, 0, start, start + self.max_duration, n, n, "VUs")]

    def describe(self, duration: str) -> str:
        return f"{self.vus} VUs × {self.iterations} iterations (max {duration})"

    def scaled(self, factor: float) -> PerVUIterations:
        return replace(self, max_duration=self.max_duration * factor)

    def for_segment(self, segment: Segment) -> SegmentedVUs:
        """This executor's share of a run split into execution segments."""
        from simulator.executors.segmented import SegmentedVUs

        return SegmentedVUs(self, segment)

    async def drive(self, run: Drive) -> None:
        from simulator.executors.vus import drive_vus

        await drive_vus(self, run)
