"""What constant-vus and per-vu-iterations answer alike, said once: a fixed number of devices
for the whole schedule (:class:`FixedVUs`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from simulator.executors.base import ClosedModel, D, Drive, StageWindow

if TYPE_CHECKING:
    from simulator.executors.segment import Segment
    from simulator.executors.segmented import SegmentedVUs


class FixedVUs(ClosedModel, ABC):
    """``vus`` devices loop from the start to the end of the schedule; the kind says how long
    (``total_duration``) and whether each device stops after a number of iterations."""

    #: it ramps through ``stages``
    ramps: ClassVar[bool] = False
    vus: int
    kind: str

    @abstractmethod
    def total_duration(self) -> float: ...

    @abstractmethod
    def iteration_bound(self, think_time: float) -> int | None: ...

    @abstractmethod
    def iteration_limit(self) -> int | None: ...

    @abstractmethod
    def describe(self, duration: str) -> str: ...

    @abstractmethod
    def scaled(self, factor: float) -> FixedVUs: ...

    def device_bound(self) -> int:
        return self.vus

    def ramp_down_grace(self, graceful_stop: float) -> float:
        return graceful_stop

    def vu_changes(self) -> list[tuple[float, int]]:
        return [(0.0, self.vus)]

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        return [(0.0, self.vus, 0)]

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        n, end = self.vus, start + self.total_duration()
        return [StageWindow(scenario, 0, start, end, n, n, "VUs")]

    def for_segment(self, segment: Segment) -> SegmentedVUs:
        """This executor's share of a run split into execution segments."""
        from simulator.executors.segmented import SegmentedVUs

        return SegmentedVUs(self, segment)

    async def drive(self, run: Drive[D]) -> None:
        from simulator.executors.vus import drive_vus

        await drive_vus(self, run)
