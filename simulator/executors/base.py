"""What every executor spec answers for itself (k6's ``lib.ExecutorConfig``), and the few
value types the plans and drivers share. One module per executor kind implements it; nothing
outside asks an executor for its kind to decide what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from simulator.executors.segment import Segment


@dataclass(frozen=True)
class Stage:
    duration: float
    target: float


def per_second(value: float, time_unit: float) -> float:
    """An arrival rate given per ``time_unit`` seconds, as iterations per second: the one
    place "rate ÷ time_unit" is worked out."""
    return value / time_unit


@dataclass(frozen=True)
class StageWindow:
    """One load level for stage-by-stage reporting: [start, end) offsets in the run."""

    scenario: str
    index: int
    start: float
    end: float
    target_from: float
    target_to: float
    unit: str  # "iters/s" or "VUs"

    @property
    def label(self) -> str:
        if self.target_from == self.target_to:
            return f"{self.target_to:g} {self.unit}"
        return f"{self.target_from:g}→{self.target_to:g} {self.unit}"


def ramp_windows(
    scenario: str, start: float, first: float, stages: tuple[Stage, ...], scale: float, unit: str
) -> list[StageWindow]:
    """The windows of a staged executor: each stage ramps from the previous target."""
    out = []
    t, prev = start, first
    for i, s in enumerate(stages):
        tgt = s.target * scale
        out.append(StageWindow(scenario, i, t, t + s.duration, prev, tgt, unit))
        t += s.duration
        prev = tgt
    return out


class Device(Protocol):
    """What the drivers need of a device: its index in the scenario (the behaviour makes it and
    gets it back; the drivers never look further)."""

    index: int


#: the device type of one behaviour (``simulator.run.devices.VirtualDevice`` for ours)
D = TypeVar("D", bound=Device)
D_contra = TypeVar("D_contra", bound=Device, contravariant=True)


class ExecutorEvents(Protocol):
    """What a driver reports; the runner turns these into metrics."""

    def dropped(self, count: int = 1, *, pool_full: bool = False) -> None:
        """Iterations not started; ``pool_full``: because every device was busy at the
        pool's maximum (``max_devices``: a configuration limit, k6's "Insufficient VUs"),
        not because the schedule fell behind."""

    def active(self, count: int) -> None: ...

    def interrupted(self, count: int) -> None: ...

    def unreached(self, count: int) -> None:
        """Arrivals of the plan neither started nor dropped: the run stopped before them."""

    def capacity(self, count: int) -> None:
        """Devices allocated so far (k6's vus_max)."""


Iterate = Callable[[D, float], Coroutine[Any, Any, None]]
"""Run one iteration for a device; the float is the loop time it was scheduled for."""


class Starter(Protocol[D_contra]):
    """What an arrival-rate executor drives: start an iteration now, hear when it is over."""

    def start(self, dev: D_contra, scheduled: float, finished: Callable[[], None]) -> None:
        """Begin an iteration due at loop time ``scheduled``; call ``finished()`` once."""

    async def abandon(self) -> None:
        """The graceful stop is over: stop what still runs and record nothing more."""


class Behaviour(Starter[D], Protocol[D]):
    """What a scenario's devices do, as the drivers need it: make a device, start an
    iteration on it (open model) or await one (closed model)."""

    def make_device(self, index: int) -> D: ...

    async def iterate(self, dev: D, scheduled: float) -> None: ...


class ClosedModel:
    """What every closed-model (VU) spec answers alike, a segment's share included: looping
    devices, so nothing is allocated up front and no arrival rate is planned."""

    #: an open model (iterations arrive on schedule) rather than looping VUs
    open_model: ClassVar[bool] = False

    def pre_allocated(self) -> None:
        return None

    def mean_rate(self) -> None:
        return None

    def expected_iterations(self) -> None:
        return None


@dataclass(frozen=True)
class Drive(Generic[D]):
    """Everything a driver needs to run one scenario's schedule from loop time ``start``."""

    start: float
    behaviour: Behaviour[D]
    events: ExecutorEvents
    stop: asyncio.Event
    graceful_stop: float
    #: least time between two wake-ups of an arrival schedule (runtime.arrival_quantum)
    quantum: float = 0.0


ArrivalPlan = tuple[Iterator[float], Callable[[float], int]]
"""Offsets (s from scenario start) at which iterations are due, and ``skip_until(offset)``:
consume every arrival due by ``offset`` and say how many (0 if the plan cannot count them
without visiting them)."""


class ScheduleSpec(Protocol):
    """What every schedule answers for itself — an executor's configuration or its share of
    a split run (k6's ``lib/executors.go``)."""

    @property
    def kind(self) -> str: ...

    def total_duration(self) -> float:
        """The scheduled duration, graceful stop not included (k6's GetMaxExecutorDuration
        minus the stop)."""

    def device_bound(self) -> int:
        """The most devices it may ever use at once (k6's GetMaxPossibleVUs)."""

    def pre_allocated(self) -> int | None:
        """Devices allocated up front by an open model; None for a closed model."""

    def mean_rate(self) -> float | None:
        """Mean iterations/s over the schedule (open model); None for a closed model."""

    def expected_iterations(self) -> int | None:
        """Iterations the schedule plans (open model); None when responses decide."""

    def iteration_bound(self, think_time: float) -> int | None:
        """An upper bound on iterations, if one is known before the run."""

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        """(offset, planned devices, extra devices it may grow by) change points, from 0,
        before the closing (end, 0, 0) step (k6's GetExecutionRequirements)."""

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        """Its load levels in run time, for the stage table."""

    def describe(self, duration: str) -> str:
        """One line for the summary header (``duration`` already formatted)."""

    def scaled(self, factor: float) -> ScheduleSpec:
        """The same executor with every duration multiplied by ``factor`` (--time-scale)."""

    async def drive(self, run: Drive[D]) -> None:
        """Follow the schedule on the running loop until it ends or ``run.stop`` is set."""


class ExecutorSpec(ScheduleSpec, Protocol):
    """An executor's configuration as a scenario file gives it: a schedule that can also be
    split into execution segments (a segment's share is not split again)."""

    def for_segment(self, segment: Segment) -> ScheduleSpec:
        """Its share of a run split into execution segments (k6's execution segments)."""
