"""Plans over a whole scenario or run, asked of the specs: the peak concurrent device need
(k6's execution requirements) and the stage windows of the report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from simulator.executors.base import ScheduleSpec, StageWindow

if TYPE_CHECKING:
    from simulator.executors.constant_arrival_rate import ConstantArrivalRate
    from simulator.executors.constant_vus import ConstantVUs
    from simulator.executors.per_vu_iterations import PerVUIterations
    from simulator.executors.ramping_arrival_rate import RampingArrivalRate
    from simulator.executors.ramping_vus import RampingVUs


class ScenarioConfig(Protocol):
    """What the plans read of a scenario (``simulator.config.ScenarioConfig``; named here so
    the executors do not import the config package that imports them)."""

    @property
    def name(self) -> str: ...

    @property
    def executor(self) -> ScheduleSpec: ...

    @property
    def start_time(self) -> float: ...

    @property
    def graceful_stop(self) -> float: ...


def arrival_offsets(ex: ConstantArrivalRate | RampingArrivalRate) -> Iterator[float]:
    """Offsets (s from scenario start) at which iterations are due, lazily, in order."""
    return ex.arrival_plan()[0]


def expected_iterations(ex: ConstantArrivalRate | RampingArrivalRate) -> int:
    """How many iterations the plan schedules (for progress and tests)."""
    return ex.expected_iterations()


def vu_changes(ex: ConstantVUs | RampingVUs | PerVUIterations) -> list[tuple[float, int]]:
    """(offset, active VUs) change points, starting with the count at 0."""
    return ex.vu_changes()


@dataclass(frozen=True)
class DevicePlan:
    """How many devices a run needs at once, as k6 counts VUs (``GetMaxPlannedVUs`` and
    ``GetMaxPossibleVUs``): scenarios that do not overlap in time reuse the same devices, so
    this is the peak of the concurrent need, not the sum over scenarios."""

    planned: int  # vus_max at the start: the busiest moment's planned devices
    possible: int  # planned + what arrival-rate scenarios may grow to (max_devices)


def device_steps(sc: ScenarioConfig) -> list[tuple[float, int, int]]:
    """(run offset, planned devices, extra devices it may grow by) change points of one
    scenario, its graceful stop included (k6's ``GetExecutionRequirements``)."""
    ex = sc.executor
    end = ex.total_duration() + sc.graceful_stop
    steps = ex.device_steps(sc.graceful_stop)
    return [(sc.start_time + t, n, x) for t, n, x in steps] + [(sc.start_time + end, 0, 0)]


def device_plan(scenarios: Sequence[ScenarioConfig]) -> DevicePlan:
    """The peak concurrent device need over the run (k6's ``GetFullExecutionRequirements``)."""
    order = sorted(
        range(len(scenarios)), key=lambda k: (scenarios[k].start_time, scenarios[k].name)
    )
    events = sorted(
        (t, rank, n, x) for rank, k in enumerate(order) for t, n, x in device_steps(scenarios[k])
    )
    planned = [0] * len(scenarios)
    extra = [0] * len(scenarios)
    peak_planned = peak_possible = 0
    for _t, rank, n, x in events:
        planned[rank], extra[rank] = n, x
        total = sum(planned)
        peak_planned = max(peak_planned, total)
        peak_possible = max(peak_possible, total + sum(extra))
    return DevicePlan(peak_planned, peak_possible)


def stage_windows(sc: ScenarioConfig) -> list[StageWindow]:
    """Stage boundaries in run time (start_time included)."""
    return sc.executor.stage_windows(sc.name, sc.start_time)
