"""An executor's share of a run for one execution segment (``spec.for_segment(segment)``).

Open model: the segment starts the arrival-rate iterations it owns (every global iteration
index belongs to one segment), at the times the whole schedule has them; its device pool is
its share of ``pre_allocated``/``max_devices`` and makes devices by their global index.
Closed model: when the whole run has n devices active, the segment has the ones it owns
among devices 0 … n−1 (VUs split proportionally); per-vu-iterations run each owned device's
full iteration count. Durations, stages and graceful stops are the whole schedule's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from simulator.executors.base import ArrivalPlan, ClosedModel, D, Drive, StageWindow
from simulator.executors.segment import Segment


class _Whole(Protocol):
    """What a segment asks of every spec it is a share of."""

    @property
    def kind(self) -> str: ...

    def total_duration(self) -> float: ...

    def device_bound(self) -> int: ...

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]: ...

    def describe(self, duration: str) -> str: ...


class _Arrival(_Whole, Protocol):
    """What a segment asks of an arrival-rate spec."""

    def pre_allocated(self) -> int: ...

    def mean_rate(self) -> float: ...

    def expected_iterations(self) -> int: ...

    def arrival_plan(self) -> ArrivalPlan: ...

    def scaled(self, factor: float) -> _Arrival: ...


class _VUs(_Whole, Protocol):
    """What a segment asks of a VU spec."""

    def iteration_bound(self, think_time: float) -> int | None: ...

    def iteration_limit(self) -> int | None: ...

    def ramp_down_grace(self, graceful_stop: float) -> float: ...

    def vu_changes(self) -> list[tuple[float, int]]: ...

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]: ...

    def scaled(self, factor: float) -> _VUs: ...


W = TypeVar("W", bound=_Whole)


@runtime_checkable
class _Indexed(Protocol):
    """A whole arrival plan that gives any arrival's offset by its index (a constant rate's
    :class:`~simulator.executors.constant_arrival_rate.ConstantPlan`)."""

    count: int

    def offset(self, i: int) -> float: ...

    def due(self, offset: float) -> int: ...


class _Strided:
    """A segment's share of an :class:`_Indexed` plan: only its own arrivals are computed
    (its k-th is the whole plan's ``segment.nth(k)``-th). Walking the whole schedule and
    skipping the others' (:class:`_Plan`) cost each worker of 2 one offset and one ownership
    test more per arrival it starts, work a one-process run at the worker's share never does:
    0.94 µs (0.72-1.24) an own arrival against 0.56 (0.35-0.70) computed, 0.36 (0.21-0.39) for
    the one-process plan at half the rate (in-process, 7 alternated rounds, busy machine)."""

    def __init__(self, whole: _Indexed, seg: Segment) -> None:
        self._whole = whole
        self._seg = seg
        self._offset = whole.offset
        self._cycle, self._positions = seg.cycle, seg.positions
        self._per = len(seg.positions)
        self._own = seg.scale(whole.count)  # this segment's arrivals in the whole plan
        self.taken = 0  # own arrivals consumed

    def __iter__(self) -> Iterator[float]:
        return self

    def __next__(self) -> float:
        k = self.taken
        if k >= self._own:
            raise StopIteration
        self.taken = k + 1
        full, rest = divmod(k, self._per)  # Segment.nth(k), inlined: once per own arrival
        return self._offset(full * self._cycle + self._positions[rest])

    def skip_until(self, offset: float) -> int:
        n = max(self._seg.scale(self._whole.due(offset)) - self.taken, 0)
        self.taken += n
        return n


class _Plan:
    """The whole arrival plan filtered to the iterations a segment owns (a plan that can only
    be walked: a ramp's)."""

    def __init__(self, whole: ArrivalPlan, seg: Segment) -> None:
        self._offsets, self._skip = whole
        self._seg = seg
        # seg.owns(i) as a set lookup: this runs once per arrival of the whole schedule (twice
        # per own arrival with 2 workers), and the bisect cost ~1 µs of each worker's start
        self._cycle = seg.cycle
        self._owned = frozenset(seg.positions)
        self.taken = 0  # global iterations consumed

    def __iter__(self) -> Iterator[float]:
        return self

    def __next__(self) -> float:
        cycle, owned = self._cycle, self._owned
        for off in self._offsets:
            i = self.taken
            self.taken = i + 1
            if i % cycle in owned:
                return off
        raise StopIteration

    def skip_until(self, offset: float) -> int:
        n = self._skip(offset)
        seg, was = self._seg, self.taken
        self.taken += n
        return seg.scale(self.taken) - seg.scale(was)


def _global_devices(seg: Segment, make: Callable[[int], D]) -> Callable[[int], D]:
    """A device factory for a driver that counts its devices from 0: the k-th device it asks
    for is the segment's k-th global device."""
    return lambda k: make(seg.nth(k))


@dataclass(frozen=True)
class _Segmented(Generic[W]):
    """A spec's share of a run: what it says as the whole does (kind, duration, stage windows)
    or scaled to the segment (devices)."""

    whole: W
    segment: Segment

    @property
    def kind(self) -> str:
        return self.whole.kind

    def total_duration(self) -> float:
        return self.whole.total_duration()

    def device_bound(self) -> int:
        return self.segment.scale(self.whole.device_bound())

    def device_indices(self) -> list[int]:
        """The global indices of every device this segment may make."""
        return list(self.segment.indices(self.whole.device_bound()))

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        return self.whole.stage_windows(scenario, start)

    def describe(self, duration: str) -> str:
        return f"{self.whole.describe(duration)} (segment {self.segment})"


@dataclass(frozen=True)
class SegmentedArrival(_Segmented[_Arrival]):
    """An arrival-rate spec's share of a run."""

    #: an open model, as the whole (a segment's VUs answer False through ClosedModel)
    open_model: ClassVar[bool] = True

    def pre_allocated(self) -> int:
        return self.segment.scale(self.whole.pre_allocated())

    def mean_rate(self) -> float:
        return self.whole.mean_rate() * float(self.segment.length)

    def expected_iterations(self) -> int:
        return self.segment.scale(self.whole.expected_iterations())

    def iteration_bound(self, think_time: float) -> int:
        return self.expected_iterations()

    def arrival_plan(self) -> ArrivalPlan:
        whole = self.whole.arrival_plan()
        plan = (
            _Strided(whole[0], self.segment)
            if isinstance(whole[0], _Indexed)
            else _Plan(whole, self.segment)
        )
        return plan, plan.skip_until

    def planned_starts(self) -> list[tuple[float, int]]:
        """(offset, global iteration index) of every iteration this segment starts."""
        seg = self.segment
        offsets = self.whole.arrival_plan()[0]
        return [(off, i) for i, off in enumerate(offsets) if seg.owns(i)]

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        pre = self.pre_allocated()
        return [(0.0, pre, self.device_bound() - pre)]

    def scaled(self, factor: float) -> SegmentedArrival:
        return SegmentedArrival(self.whole.scaled(factor), self.segment)

    async def drive(self, run: Drive[D]) -> None:
        from simulator.executors.arrival import drive_arrival
        from simulator.executors.runtime import DevicePool

        make = _global_devices(self.segment, run.behaviour.make_device)
        await drive_arrival(self, run, DevicePool(make, self.pre_allocated(), self.device_bound()))


@dataclass(frozen=True)
class SegmentedVUs(ClosedModel, _Segmented[_VUs]):
    """A VU spec's share of a run: the devices it owns among those the whole run has active."""

    def iteration_bound(self, think_time: float) -> int | None:
        whole = self.whole.iteration_bound(think_time)
        n = self.whole.device_bound()
        if whole is None or n == 0:
            return whole
        return -(-whole * self.device_bound() // n)

    def iteration_limit(self) -> int | None:
        return self.whole.iteration_limit()

    def ramp_down_grace(self, graceful_stop: float) -> float:
        return self.whole.ramp_down_grace(graceful_stop)

    def vu_changes(self) -> list[tuple[float, int]]:
        seg = self.segment
        out: list[tuple[float, int]] = []
        for off, n in self.whole.vu_changes():
            mine = seg.scale(n)
            if not out or out[-1][1] != mine:
                out.append((off, mine))
        return out

    def planned_starts(self) -> list[tuple[float, int]]:
        """(offset, global device index) each time a device of this segment becomes active."""
        seg = self.segment
        out: list[tuple[float, int]] = []
        active = 0
        for off, n in self.vu_changes():
            out.extend((off, seg.nth(k)) for k in range(active, n))
            active = n
        return out

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        seg = self.segment
        return [
            (t, seg.scale(n), seg.scale(n + x) - seg.scale(n))
            for t, n, x in self.whole.device_steps(graceful_stop)
        ]

    def scaled(self, factor: float) -> SegmentedVUs:
        return SegmentedVUs(self.whole.scaled(factor), self.segment)

    async def drive(self, run: Drive[D]) -> None:
        from simulator.executors.vus import drive_vus

        make = _global_devices(self.segment, run.behaviour.make_device)
        await drive_vus(self, run, make)
