"""constant-vus: a fixed number of devices loop over iterations for a duration (closed model)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Literal

from simulator.executors.base import Drive, StageWindow

if TYPE_CHECKING:
    from simulator.executors.segment import Segment
    from simulator.executors.segmented import SegmentedVUs


@dataclass(frozen=True)
class ConstantVUs:
    vus: int
    duration: float
    kind: Literal["constant-vus"] = "constant-vus"
    #: an open model (iterations arrive on schedule) rather than looping VUs
    open_model: ClassVar[bool] = False
    #: it ramps through ``stages``
    ramps: ClassVar[bool] = False
    #: the key that gives its length in a scenario file (None: the stages do)
    duration_key: ClassVar[str | None] = "duration"

    def total_duration(self) -> float:
        return self.duration

    def device_bound(self) -> int:
        return self.vus

    def pre_allocated(self) -> None:
        return None

    def mean_rate(self) -> None:
        return None

    def expected_iterations(self) -> None:
        return None

    def iteration_bound(self, think_time: float) -> int | None:
        if think_time > 0:
            return int(self.vus * (self.duration / think_time + 1))
        return None

    def iteration_limit(self) -> int | None:
        return None

    def ramp_down_grace(self, graceful_stop: float) -> float:
        return graceful_stop

    def vu_changes(self) -> list[tuple[float, int]]:
        return [(0.0, self.vus)]

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        return [(0.0, self.vus, 0)]

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        n = self.vus
        return [StageWindow(scenario, 0, start, start + self.duration, n, n, "VUs")]

    def describe(self, duration: str) -> str:
        return f"{self.vus} looping VUs for {duration}"

    def scaled(self, factor: float) -> ConstantVUs:
        return replace(self, duration=self.duration * factor)

    def for_segment(self, segment: Segment) -> SegmentedVUs:
        """This executor's share of a run split into execution segments."""
        from simulator.executors.segmented import SegmentedVUs

        return SegmentedVUs(self, segment)

    async def drive(self, run: Drive) -> None:
        from simulator.executors.vus import drive_vus

        await drive_vus(self, run)
