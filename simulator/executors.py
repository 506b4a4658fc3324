"""Executors: *when* iterations start and how many devices are active — scheduling only.

Pure functions compute the plan (arrival offsets, VU change points, stage windows); the async
drivers follow the plan on the event loop's clock and hand each iteration to a callback. Nothing
here knows about HTTP or metrics, so tests drive it with a virtual-time loop and no network.

Semantics follow k6:

* arrival-rate executors are an *open* model: the schedule never waits for responses. A
  constant rate of 10/s starts one iteration every 100 ms beginning at 0; a ramping rate starts
  iteration i (from 1) when the integral of the rate reaches i, so a ramp from 0 starts nothing
  at 0 and the total is the integral rounded down. An iteration that finds no free device (all
  ``max_devices`` busy) is dropped, never queued, and reported as dropped.
* VU executors are a *closed* model: each active device loops over iterations; a think time is
  the iteration's own last step (k6's ``sleep()``), the behaviour's business, not the loop's.
* After the scheduled duration no iteration starts; running ones get ``graceful_stop`` to finish
  and are then cancelled (reported as interrupted). Devices removed by a ramping-vus ramp-down
  finish their current iteration within ``graceful_ramp_down``. per-vu-iterations count the
  iterations not started by ``max_duration`` as dropped.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from simulator.config import (
    ConstantArrivalRate,
    ConstantVUs,
    PerVUIterations,
    RampingArrivalRate,
    RampingVUs,
    ScenarioConfig,
    Stage,
    executor_duration,
)

# --------------------------------------------------------------------------- plans


def arrival_offsets(ex: ConstantArrivalRate | RampingArrivalRate) -> Iterator[float]:
    """Offsets (s from scenario start) at which iterations are due, lazily, in order."""
    if isinstance(ex, ConstantArrivalRate):
        interval = ex.time_unit / ex.rate
        count = math.ceil(ex.duration / interval - 1e-9)
        for i in range(count):
            yield i * interval
        return
    done = 0.0  # iterations integrated before the current stage
    t0 = 0.0
    r0 = ex.start_rate / ex.time_unit
    i = 1  # k6: iteration i is due when the integral reaches i
    for stage in ex.stages:
        r1 = stage.target / ex.time_unit
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


def expected_iterations(ex: ConstantArrivalRate | RampingArrivalRate) -> int:
    """How many iterations the plan schedules (for progress and tests)."""
    if isinstance(ex, ConstantArrivalRate):
        return math.ceil(ex.duration * ex.rate / ex.time_unit - 1e-9)
    total, r0 = 0.0, ex.start_rate
    for s in ex.stages:
        total += (r0 + s.target) / 2 * s.duration / ex.time_unit
        r0 = s.target
    return math.floor(total + 1e-9)


def vu_changes(ex: ConstantVUs | RampingVUs) -> list[tuple[float, int]]:
    """(offset, active VUs) change points, starting with the count at 0."""
    if isinstance(ex, ConstantVUs):
        return [(0.0, ex.vus)]
    out = [(0.0, ex.start_vus)]
    cur = ex.start_vus
    t = 0.0
    for s in ex.stages:
        target = int(s.target)
        if target != cur:
            if s.duration <= 0:
                out.append((t, target))
            else:
                step = 1 if target > cur else -1
                span = abs(target - cur)
                for k in range(1, span + 1):
                    out.append((t + s.duration * k / span, cur + step * k))
        cur = target
        t += s.duration
    merged: list[tuple[float, int]] = []
    for off, n in out:
        if merged and abs(merged[-1][0] - off) < 1e-12:
            merged[-1] = (off, n)
        else:
            merged.append((off, n))
    return merged


@dataclass(frozen=True)
class DevicePlan:
    """How many devices a run needs at once, as k6 counts VUs (``GetMaxPlannedVUs`` and
    ``GetMaxPossibleVUs``): scenarios that do not overlap in time reuse the same devices, so
    this is the peak of the concurrent need, not the sum over scenarios."""

    planned: int  # vus_max at the start: the busiest moment's planned devices
    possible: int  # planned + what arrival-rate scenarios may grow to (max_devices)


def _ramp_down_reserved(
    raw: list[tuple[float, int]], grace: float, end: float
) -> list[tuple[float, int]]:
    """k6's graceful ramp-down reservation: after a step down, keep the higher count for
    ``grace`` seconds (devices finishing their iteration), unless it rises back first.
    O(n log n): a range-maximum table answers "does it rise back to ``last`` in the window"."""
    times = [t for t, _ in raw]
    table = [[n for _, n in raw]]  # table[k][i] = max of raw[i : i + 2**k]
    while 2 ** len(table) <= len(raw):
        prev, half = table[-1], 2 ** (len(table) - 1)
        table.append([max(prev[i], prev[i + half]) for i in range(len(prev) - half)])

    def range_max(lo: int, hi: int) -> int:  # max over raw[lo:hi], hi > lo
        k = (hi - lo).bit_length() - 1
        return max(table[k][lo], table[k][hi - 2**k])

    out: list[tuple[float, int]] = []
    last = 0
    i = 0
    while i < len(raw):
        t, n = raw[i]
        if i == 0 or n > last:
            out.append((t, n))
            last = n
        elif n < last:
            until = t + grace
            hi = bisect.bisect_right(times, until, i + 1)  # steps inside the grace window
            if hi > i + 1 and range_max(i + 1, hi) >= last:
                lo, top = i + 1, hi  # the first step back up to `last`
                while top - lo > 1:
                    mid = (lo + top) // 2
                    if range_max(i + 1, mid) >= last:
                        top = mid
                    else:
                        lo = mid
                i = top - 1
                continue
            if until >= end:
                break
            out.append((until, n))
            last = n
        i += 1
    return out


def device_steps(sc: ScenarioConfig) -> list[tuple[float, int, int]]:
    """(run offset, planned devices, extra devices it may grow by) change points of one
    scenario, its graceful stop included (k6's ``GetExecutionRequirements``)."""
    ex = sc.executor
    end = executor_duration(ex) + sc.graceful_stop
    if isinstance(ex, ConstantArrivalRate | RampingArrivalRate):
        pre = ex.pre_allocated_devices
        steps = [(0.0, pre, ex.max_devices - pre)]
    elif isinstance(ex, ConstantVUs | PerVUIterations):
        steps = [(0.0, ex.vus, 0)]
    else:
        raw = vu_changes(ex)
        if ex.graceful_ramp_down > 0:
            raw = _ramp_down_reserved(raw, ex.graceful_ramp_down, end)
        steps = [(t, n, 0) for t, n in raw if t < end]
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


def stage_windows(sc: ScenarioConfig) -> list[StageWindow]:
    """Stage boundaries in run time (start_time included)."""
    ex = sc.executor
    t = sc.start_time
    if isinstance(ex, ConstantArrivalRate):
        r = ex.rate / ex.time_unit
        return [StageWindow(sc.name, 0, t, t + ex.duration, r, r, "iters/s")]
    if isinstance(ex, ConstantVUs):
        return [StageWindow(sc.name, 0, t, t + ex.duration, ex.vus, ex.vus, "VUs")]
    if isinstance(ex, PerVUIterations):
        return [StageWindow(sc.name, 0, t, t + ex.max_duration, ex.vus, ex.vus, "VUs")]
    stages: tuple[Stage, ...] = ex.stages
    prev = ex.start_rate / ex.time_unit if isinstance(ex, RampingArrivalRate) else ex.start_vus
    scale = 1 / ex.time_unit if isinstance(ex, RampingArrivalRate) else 1.0
    unit = "iters/s" if isinstance(ex, RampingArrivalRate) else "VUs"
    out = []
    for i, s in enumerate(stages):
        tgt = s.target * scale
        out.append(StageWindow(sc.name, i, t, t + s.duration, prev, tgt, unit))
        t += s.duration
        prev = tgt
    return out


# --------------------------------------------------------------------------- runtime


class Device(Protocol):
    index: int


class ExecutorEvents(Protocol):
    """What a driver reports; the runner turns these into metrics."""

    def dropped(self, count: int = 1) -> None: ...

    def active(self, count: int) -> None: ...

    def interrupted(self, count: int) -> None: ...

    def capacity(self, count: int) -> None:
        """Devices allocated so far (k6's vus_max)."""


Iterate = Callable[[Any, float], Coroutine[Any, Any, None]]
"""Run one iteration for a device; the float is the loop time it was scheduled for."""


class DevicePool:
    """Pre-allocated devices, grown on demand up to a maximum (k6's preAllocatedVUs/maxVUs)."""

    def __init__(self, make: Callable[[int], Device], pre_allocated: int, maximum: int):
        self._make = make
        self._free: deque[Device] = deque(make(i) for i in range(pre_allocated))
        self.allocated = pre_allocated
        self.maximum = maximum
        self.busy = 0

    def acquire(self) -> Device | None:
        if self._free:
            self.busy += 1
            return self._free.popleft()
        if self.allocated < self.maximum:
            dev = self._make(self.allocated)
            self.allocated += 1
            self.busy += 1
            return dev
        return None

    def release(self, dev: Device) -> None:
        self.busy -= 1
        self._free.append(dev)


_OFFSETS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, float] = weakref.WeakKeyDictionary()


def perf_offset(loop: asyncio.AbstractEventLoop) -> float:
    """``perf_counter() − loop.time()``, taken once per loop: the one conversion between the
    schedule (loop time) and request timing (perf_counter). Every conversion must use the same
    value, or a start can look earlier than its schedule."""
    off = _OFFSETS.get(loop)
    if off is None:
        off = _OFFSETS[loop] = time.perf_counter() - loop.time()
    return off


def schedule_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """Loop time, to the microsecond. uvloop's ``loop.time()`` counts whole milliseconds, so
    the schedule reads ``perf_counter()`` instead (shifted by :func:`perf_offset`); a loop that
    brings its own clock (the tests' virtual time) is used as it is."""
    if (
        isinstance(loop, asyncio.BaseEventLoop)
        and type(loop).time is not asyncio.BaseEventLoop.time
    ):
        return loop.time
    off = perf_offset(loop)
    return lambda: time.perf_counter() - off


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float, stop: asyncio.Event) -> bool:
    """Sleep until loop time ``when``; False if ``stop`` was set first."""
    delay = when - loop.time()
    if delay <= 0:
        return not stop.is_set()
    if stop.is_set():
        return False
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter}, timeout=delay)
    finally:
        if not waiter.done():
            waiter.cancel()
    return not stop.is_set()


async def _drain(tasks: set[asyncio.Task[None]], grace: float, events: ExecutorEvents) -> None:
    """Give running iterations ``grace`` seconds, then cancel and count the rest."""
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=grace)
        if pending:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            events.interrupted(len(pending))


class Starter(Protocol):
    """What an arrival-rate executor drives: start an iteration now, hear when it is over."""

    def start(self, dev: Any, scheduled: float, finished: Callable[[], None]) -> None:
        """Begin an iteration due at loop time ``scheduled``; call ``finished()`` once."""

    async def abandon(self) -> None:
        """The graceful stop is over: stop what still runs and record nothing more."""


class TaskStarter:
    """A :class:`Starter` for iteration code written as a coroutine: one task per iteration."""

    def __init__(self, iterate: Iterate) -> None:
        self._iterate = iterate
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, dev: Any, scheduled: float, finished: Callable[[], None]) -> None:
        task = asyncio.get_running_loop().create_task(self._iterate(dev, scheduled))
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            finished()

        task.add_done_callback(done)

    async def abandon(self) -> None:
        pending = list(self._tasks)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


#: Arrivals one scheduling callback handles before it yields to the event loop.
MAX_PER_CALLBACK = 1000


class _ConstantPlan:
    """:func:`arrival_offsets` of a constant rate (``i * interval``) as an iterator that can
    also skip every arrival due by an offset in O(1) — for counting drops without visiting."""

    def __init__(self, ex: ConstantArrivalRate) -> None:
        self.interval = ex.time_unit / ex.rate
        self.count = math.ceil(ex.duration / self.interval - 1e-9)
        self.taken = 0

    def __iter__(self) -> _ConstantPlan:
        return self

    def __next__(self) -> float:
        if self.taken >= self.count:
            raise StopIteration
        self.taken += 1
        return (self.taken - 1) * self.interval

    def skip_until(self, offset: float) -> int:
        """Consume the arrivals due at or before ``offset``; how many there were."""
        due = min(math.floor(offset / self.interval + 1e-9) + 1, self.count)
        n = max(due - self.taken, 0)
        self.taken += n
        return n


async def run_arrival_rate(
    ex: ConstantArrivalRate | RampingArrivalRate,
    *,
    start: float,
    pool: DevicePool,
    starter: Starter,
    events: ExecutorEvents,
    stop: asyncio.Event,
    graceful_stop: float,
) -> None:
    """Start iterations on schedule from loop time ``start``; never wait for responses."""
    loop = asyncio.get_running_loop()
    schedule: Iterator[float] = (
        _ConstantPlan(ex) if isinstance(ex, ConstantArrivalRate) else iter(arrival_offsets(ex))
    )
    finished_schedule: asyncio.Future[None] = loop.create_future()
    inflight = 0
    idle = asyncio.Event()
    idle.set()

    def release(dev: Device) -> None:
        nonlocal inflight
        inflight -= 1
        pool.release(dev)
        events.active(pool.busy)
        if inflight == 0:
            idle.set()

    now = schedule_clock(loop)
    # uvloop's timers count whole milliseconds and may fire up to one early: re-arm in whole
    # milliseconds there (a shorter delay rounds to 0 and would spin the loop).
    whole_ms = not isinstance(loop, asyncio.BaseEventLoop)

    def fire(when: float) -> None:
        # An exception here (a device that cannot build its request) would only be logged by
        # the loop and the schedule would never re-arm: the run waited forever. It ends the
        # schedule instead, and run_arrival_rate raises it (the runner ends the run).
        try:
            fire_due(when)
        except Exception as exc:  # noqa: BLE001 - re-raised by run_arrival_rate
            if not finished_schedule.done():
                finished_schedule.set_exception(exc)

    def fire_due(when: float) -> None:
        # A plain timer callback, not a sleeping coroutine, and the starter begins the
        # iteration right here: no task or coroutine switch per arrival for the schedule.
        # Nothing starts before it is due (a start before its schedule would make the
        # corrected duration shorter than the raw one); a timer that fires early re-arms.
        # At most MAX_PER_CALLBACK arrivals are handled per callback; the rest wait one loop
        # turn, so a schedule far behind (or absurdly dense) never holds the loop: Ctrl-C,
        # responses and ticks go on.
        nonlocal inflight
        t = now()
        budget = MAX_PER_CALLBACK
        while when <= t:
            if stop.is_set():
                break
            budget -= 1
            if budget < 0:
                loop.call_soon(fire, when)
                return
            grown = pool.allocated
            dev = pool.acquire()
            if dev is None:
                # Every device is busy and none can be freed inside this callback: whatever
                # else is due by now drops too. A constant rate counts those arithmetically.
                skipped = (
                    schedule.skip_until(t - start) if isinstance(schedule, _ConstantPlan) else 0
                )
                events.dropped(1 + skipped)
            else:
                if pool.allocated != grown:
                    events.capacity(pool.allocated)
                events.active(pool.busy)
                inflight += 1
                idle.clear()
                try:
                    starter.start(dev, when, partial(release, dev))
                except Exception:
                    release(dev)  # it never started: not in flight, the device is free
                    raise
            off = next(schedule, None)
            if off is None:
                break
            when = start + off
        else:
            if not stop.is_set():
                delay = when - now()
                if whole_ms:
                    delay = math.ceil(delay * 1000) / 1000
                loop.call_later(max(delay, 0.0), fire, when)
                return
        if not finished_schedule.done():
            finished_schedule.set_result(None)

    events.capacity(pool.allocated)
    first = next(schedule, None)
    if first is not None:
        loop.call_at(start + first, fire, start + first)
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait([finished_schedule, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if finished_schedule.done() and finished_schedule.exception() is not None:
            if inflight:
                events.interrupted(inflight)
                await starter.abandon()
            raise finished_schedule.exception()  # type: ignore[misc]
    if not stop.is_set():
        await _sleep_until(loop, start + executor_duration(ex), stop)
    grace = 0.0 if stop.is_set() else graceful_stop
    if inflight and grace > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), grace)
    if inflight:
        events.interrupted(inflight)
        await starter.abandon()


async def run_vus(
    ex: ConstantVUs | RampingVUs | PerVUIterations,
    *,
    start: float,
    make_device: Callable[[int], Device],
    iterate: Iterate,
    events: ExecutorEvents,
    stop: asyncio.Event,
    graceful_stop: float,
) -> None:
    """Closed model: keep the planned number of devices looping until the end."""
    loop = asyncio.get_running_loop()
    now = schedule_clock(loop)
    end = start + executor_duration(ex)
    ending = asyncio.Event()  # the scheduled duration is over: no new iterations
    devices: list[Device] = []
    loops: dict[int, asyncio.Task[None]] = {}
    retire: dict[int, float] = {}  # index → loop time by which it must have stopped
    running: dict[int, asyncio.Task[None]] = {}
    limit = ex.iterations if isinstance(ex, PerVUIterations) else None
    started: dict[int, int] = {}  # index → iterations started (per-vu-iterations' drops)
    finished_vus = 0

    async def vu(dev: Device) -> None:
        while not ending.is_set() and dev.index not in retire and not stop.is_set():
            if limit is not None and started.get(dev.index, 0) >= limit:
                break
            it = loop.create_task(iterate(dev, now()))
            running[dev.index] = it
            started[dev.index] = started.get(dev.index, 0) + 1
            try:
                await it
            finally:
                running.pop(dev.index, None)
        if limit is not None:  # k6: a per-vu-iterations VU stops being active when it is done
            nonlocal finished_vus
            finished_vus += 1
            events.active(len(devices) - finished_vus)

    def set_active(n: int) -> None:
        if len(devices) < n:
            while len(devices) < n:
                devices.append(make_device(len(devices)))
            events.capacity(len(devices))
        for dev in devices[:n]:
            retire.pop(dev.index, None)
            task = loops.get(dev.index)
            if task is None or task.done():
                loops[dev.index] = loop.create_task(vu(dev))
        grace = ex.graceful_ramp_down if isinstance(ex, RampingVUs) else graceful_stop
        for dev in devices[n:]:
            task = loops.get(dev.index)
            if task is not None and not task.done() and dev.index not in retire:
                retire[dev.index] = loop.time() + grace
        events.active(n)

    async def enforce_ramp_down() -> None:
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            for idx, deadline in list(retire.items()):
                if now >= deadline and idx in running:
                    running[idx].cancel()
                    events.interrupted(1)
                    retire.pop(idx, None)

    plan = [(0.0, ex.vus)] if isinstance(ex, PerVUIterations) else vu_changes(ex)
    enforcer = loop.create_task(enforce_ramp_down())
    try:
        for off, n in plan:
            if not await _sleep_until(loop, start + off, stop):
                break
            set_active(n)
        if isinstance(ex, PerVUIterations):
            all_done: asyncio.Future[Any] = asyncio.gather(*loops.values(), return_exceptions=True)
            waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                [all_done, waiter],
                timeout=max(end - loop.time(), 0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
        else:
            await _sleep_until(loop, end, stop)
    finally:
        ending.set()
        await _drain(set(running.values()), 0.0 if stop.is_set() else graceful_stop, events)
        for t in loops.values():
            t.cancel()
        await asyncio.gather(*loops.values(), return_exceptions=True)
        if limit is not None and not stop.is_set():
            # k6: what a VU had not started by maxDuration is dropped (not on an abort).
            missing = sum(limit - started.get(d.index, 0) for d in devices)
            if missing > 0:
                events.dropped(missing)
        enforcer.cancel()
        await asyncio.gather(enforcer, return_exceptions=True)
        events.active(0)
