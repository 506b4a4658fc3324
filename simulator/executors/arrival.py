"""Executors: *when* iterations start and how many devices are active — scheduling only.

This module: the open model's driver (arrival-rate executors).

Pure functions compute the plan (arrival offsets, VU change points, stage windows); the async
drivers follow the plan on the event loop's clock and hand each iteration to a callback. Nothing
here knows about HTTP or metrics, so tests drive it with a virtual-time loop and no network.

Semantics follow k6:

* arrival-rate executors are an *open* model: the schedule never waits for responses. A
  constant rate of 10/s starts one iteration every 100 ms beginning at 0; a ramping rate starts
  iteration i (from 1) when the integral of the rate reaches i, so a ramp from 0 starts nothing
  at 0 and the total is the integral rounded down. An iteration that finds no free device (all
  ``max_devices`` busy) is dropped, never queued, and reported as dropped — once the loop has
  read the replies already received (its timers run before its poll: a device whose reply
  waits in a socket is not busy; k6's VUs take their replies on other threads meanwhile).
* VU executors are a *closed* model: each active device loops over iterations; a think time is
  the iteration's own last step (k6's ``sleep()``), the behaviour's business, not the loop's.
* A loop behind its schedule (more work than the generator can do) reaches arrivals late. An
  arrival reached more than :data:`MAX_LATE` late is dropped, not started, and so is every
  arrival due by then (as when every device is busy): the generator drops what it cannot keep,
  as it goes, instead of running a backlog seconds behind its schedule and starting all of it
  late (k6 has no such bound: its VUs run on other threads, so its schedule is not held up by
  the requests' own work, and it drops when no VU is free). Started + dropped is the plan
  exactly.
* After the scheduled duration nothing starts (k6's executors return at the end of their
  duration): an arrival due before the end but reached after it more than :data:`END_LATE`
  late (the clock's tolerance) is dropped, counted, with every arrival left, where k6 leaves
  them uncounted; so a loop behind its schedule stops starting at its end. Running iterations
  get ``graceful_stop`` to finish and are then cancelled (reported as interrupted). A run stopped
  before its schedule is done (Ctrl-C, an abort, a failure) leaves the rest of the plan
  unreached: the driver reports how many (``ExecutorEvents.unreached``) and the summary says
  so. Any arrival taken from the plan and neither started nor dropped counts as unreached, so
  started + dropped + unreached is always the plan, never short of it silently. Devices removed
  by a ramping-vus ramp-down finish their current iteration within ``graceful_ramp_down``.
  per-vu-iterations count the iterations not started by ``max_duration`` as dropped.
"""

from __future__ import annotations

import asyncio
import math
from functools import partial
from typing import Any, Protocol

from simulator.executors.base import ArrivalPlan, D, Drive, ExecutorEvents, Starter
from simulator.executors.runtime import DevicePool, schedule_clock, sleep_until, wait_set


class ArrivalExecutor(Protocol):
    """What the open-model driver asks of an arrival-rate spec."""

    def arrival_plan(self) -> ArrivalPlan: ...

    def total_duration(self) -> float: ...

    def expected_iterations(self) -> int: ...


#: Arrivals one scheduling callback handles before it yields to the event loop.
MAX_PER_CALLBACK = 1000

#: An arrival reached more than this late is dropped, with every arrival due by then: the
#: schedule has fallen behind what the generator can do. Not 0: a timer fires after its time
#: (uvloop's 1 ms step, the arrival quantum, a stalled or descheduled process), and the last
#: arrival of a ramp is due at the end itself; such an arrival is on time, not a schedule
#: fallen behind. A whole second: the hypervisor here takes a vCPU for 100 ms at a time,
#: several times in a row, and a healthy run must not lose arrivals to that (0.25 s would
#: have: the exact-count tests of real runs). Before this held mid-run too, a loop past its
#: ceiling started every arrival however late: at 1.5x it ran 2-4 s behind its schedule (start
#: lag p99 4.1-4.6 s) and dropped the backlog only at the end.
MAX_LATE = 1.0

#: After the schedule's end an arrival reached more than this late is dropped, with every
#: arrival left (k6 starts nothing after a scenario's duration). Not 0, for the reasons above:
#: the last wake-up of a worker's quantum, a ramp's last arrival due at the end itself, a
#: 100 ms hypervisor stall are on time. Before, past its ceiling the loop went on starting
#: arrivals up to MAX_LATE late after the end: at 1.5x a 26,000/s ceiling its workers started
#: their last arrivals 0.1-0.4 s after the schedule and the run took that long more.
END_LATE = 0.25


async def run_arrival_rate(
    ex: ArrivalExecutor,
    *,
    start: float,
    pool: DevicePool[D],
    starter: Starter[D],
    events: ExecutorEvents,
    stop: asyncio.Event,
    graceful_stop: float,
    quantum: float = 0.0,
) -> None:
    """Start iterations on schedule from loop time ``start``; never wait for responses.

    ``quantum``: the least time between two wake-ups of the schedule (0: as often as the
    loop's clock allows). A wake-up starts everything due by then, so arrivals start up to
    ``quantum`` late, never early (:func:`~simulator.executors.runtime.arrival_quantum`)."""
    loop = asyncio.get_running_loop()
    plan, skip_plan = ex.arrival_plan()
    finished_schedule: asyncio.Future[None] = loop.create_future()
    inflight = 0
    # Every arrival taken from the plan, and every one started or dropped: the two must meet
    # (a taken arrival that is neither is reported as unreached, never lost silently).
    taken = handled = 0
    exhausted = False

    def next_offset() -> float | None:
        nonlocal taken, exhausted
        off = next(plan, None)
        if off is None:
            exhausted = True
        else:
            taken += 1
        return off

    def skip_until(offset: float) -> int:
        # consumes the plan: its count must reach events.dropped (or it is unreached)
        nonlocal taken
        n = skip_plan(offset)
        taken += n
        return n

    def drop(count: int, pool_full: bool = False) -> None:
        nonlocal handled
        handled += count
        events.dropped(count, pool_full=pool_full)

    idle = asyncio.Event()
    idle.set()

    def release(dev: D) -> None:
        nonlocal inflight
        inflight -= 1
        pool.release(dev)
        events.active(pool.busy)
        if inflight == 0:
            idle.set()

    now = schedule_clock(loop)
    end = start + ex.total_duration()
    # uvloop's timers count whole milliseconds and may fire up to one early: re-arm in whole
    # milliseconds there (a shorter delay rounds to 0 and would spin the loop).
    whole_ms = not isinstance(loop, asyncio.BaseEventLoop)

    def fire(when: float, after_io: bool = False) -> None:
        # An exception here (a device that cannot build its request) would only be logged by
        # the loop and the schedule would never re-arm: the run waited forever. It ends the
        # schedule instead, and run_arrival_rate raises it (the runner ends the run).
        try:
            fire_due(when, after_io)
        except Exception as exc:  # noqa: BLE001 - re-raised by run_arrival_rate
            if not finished_schedule.done():
                finished_schedule.set_exception(exc)

    def fire_due(when: float, after_io: bool) -> None:
        # A plain timer callback, not a sleeping coroutine, and the starter begins the
        # iteration right here: no task or coroutine switch per arrival for the schedule.
        # Nothing starts before it is due (a start before its schedule would make the
        # corrected duration shorter than the raw one); a timer that fires early re-arms.
        # At most MAX_PER_CALLBACK arrivals are handled per callback; the rest wait one loop
        # turn, so a schedule far behind (or absurdly dense) never holds the loop: Ctrl-C,
        # responses and ticks go on.
        nonlocal inflight, handled
        t = now()
        budget = MAX_PER_CALLBACK
        while when <= t:
            if stop.is_set():
                break
            budget -= 1
            if budget < 0:
                loop.call_soon(fire, when)
                return
            # The clock afresh, not ``t``: this callback's starts take time (up to
            # MAX_PER_CALLBACK of them, seconds on a loop far behind); ~0.1 µs an arrival.
            c = now()
            if c - when > MAX_LATE or (c > end and c - when > END_LATE):
                # the loop fell behind its schedule: this and every arrival due by now drop
                # (past the end: every arrival left, as k6 starts nothing after its duration)
                drop(1 + skip_until(c - start))
                off = next_offset()
                if off is None:
                    break
                when = start + off
                continue
            grown = pool.allocated
            dev = pool.acquire()
            if dev is None and not after_io:
                # Every device looks busy, but a loop runs its timers before it reads its
                # sockets: replies already received have not freed their devices yet. The
                # verdict waits for one read of them (the arrival is late either way).
                loop.call_soon(after_poll, when)
                return
            if dev is None:
                # Every device is busy and none can be freed inside this callback: whatever
                # else is due by now drops too. A constant rate counts those arithmetically.
                # The pool is at its maximum: a configuration limit, told apart from lateness.
                drop(1 + skip_until(t - start), pool_full=True)
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
                handled += 1
            off = next_offset()
            if off is None:
                break
            when = start + off
        else:
            if not stop.is_set():
                # the next wake-up: when the next arrival is due, but not within a quantum
                # of this one (the arrivals due meanwhile start together then)
                delay = max(when, t + quantum) - now()
                if whole_ms:
                    delay = math.ceil(delay * 1000) / 1000
                loop.call_later(max(delay, 0.0), fire, when)
                return
        if not finished_schedule.done():
            finished_schedule.set_result(None)

    def report_unreached() -> None:
        # The schedule is over: done (the plan exhausted), stopped or failed. Arrivals taken but
        # neither started nor dropped (held by a callback when the stop came) and those never
        # taken (the rest of a stopped plan: the executor's count, as a constant plan's skip
        # is) are the plan's unreached part.
        rest = 0 if exhausted else max(ex.expected_iterations() - taken, 0)
        unreached = taken - handled + rest
        if unreached > 0:
            events.unreached(unreached)

    def after_poll(when: float) -> None:
        # a callback made ready now runs before the loop's next poll for I/O (uvloop runs
        # it in the same turn): one more hop puts the retry after that poll
        loop.call_soon(fire, when, True)

    events.capacity(pool.allocated)
    first = next_offset()
    if first is not None:
        loop.call_at(start + first, fire, start + first)
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait([finished_schedule, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if finished_schedule.done() and finished_schedule.exception() is not None:
            if inflight:
                events.interrupted(inflight)
                await starter.abandon()
            report_unreached()
            raise finished_schedule.exception()  # type: ignore[misc]
    report_unreached()
    if not stop.is_set():
        await sleep_until(loop, end, stop)
    grace = 0.0 if stop.is_set() else graceful_stop
    if inflight and grace > 0:
        await wait_set(idle, grace)
    if inflight:
        events.interrupted(inflight)
        await starter.abandon()


__all__ = ["DevicePool", "run_arrival_rate"]


async def drive_arrival(ex: ArrivalExecutor, run: Drive[D], pool: DevicePool[D]) -> None:
    """``run_arrival_rate`` with a run's hand-off, for every arrival spec's ``drive``."""
    await run_arrival_rate(
        ex,
        start=run.start,
        pool=pool,
        starter=run.behaviour,
        events=run.events,
        stop=run.stop,
        graceful_stop=run.graceful_stop,
        quantum=run.quantum,
    )
