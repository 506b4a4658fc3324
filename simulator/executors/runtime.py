"""The drivers' clock and device bookkeeping: the one conversion between loop time and
``perf_counter``, sleeping until a loop time, the open model's device pool, and a
:class:`~simulator.executors.base.Starter` for iteration code written as a coroutine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic

from scfleet_core.errors import ConfigError
from simulator.executors.base import D, Iterate


class DevicePool(Generic[D]):
    """Pre-allocated devices, grown on demand up to a maximum (k6's preAllocatedVUs/maxVUs)."""

    def __init__(self, make: Callable[[int], D], pre_allocated: int, maximum: int):
        self._make = make
        self._free: deque[D] = deque(make(i) for i in range(pre_allocated))
        self.allocated = pre_allocated
        self.maximum = maximum
        self.busy = 0

    def acquire(self) -> D | None:
        if self._free:
            self.busy += 1
            return self._free.popleft()
        if self.allocated < self.maximum:
            dev = self._make(self.allocated)
            self.allocated += 1
            self.busy += 1
            return dev
        return None

    def release(self, dev: D) -> None:
        self.busy -= 1
        self._free.append(dev)


def new_loop() -> asyncio.AbstractEventLoop:
    """A run's event loop (each worker's too): uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


#: The longest arrival quantum: the most lateness it may add to a start (the benchmarks judge
#: a run by start lag p99 < 5 ms).
MAX_ARRIVAL_QUANTUM = 0.004


def arrival_quantum(workers: int) -> float:
    """The least time between two wake-ups of an arrival schedule in one of ``workers``
    processes sharing this machine's run. One uvloop process wakes at most once per ms (its
    clock's step) whatever the rate, so a worker running 1/N of the rate woke as often as one
    running all of it: N workers made N times the wake-ups (25–37 µs of CPU each on a VM) for
    the same requests. Waking once per N ms keeps the machine's total that of one process; the
    price is that an arrival may start up to N ms late (capped at MAX_ARRIVAL_QUANTUM), never
    early, and its lag is measured as ever. One process: 0 (as often as its clock allows)."""
    if workers <= 1:
        return 0.0
    return min(workers * 0.001, MAX_ARRIVAL_QUANTUM)


#: Bench hook: a one-process run wakes for its arrivals as a local worker of this many does
#: (bench/bench_ceiling.py's share run: 1 worker at the rate ÷ N, to compare with each of
#: ``auto``'s N workers on the same footing).
QUANTUM_OF_ENV = "SCFLEET_BENCH_QUANTUM_OF"


def one_process_quantum() -> float:
    """The arrival quantum of a one-process run: 0, or that of a worker of
    ``$SCFLEET_BENCH_QUANTUM_OF`` (:data:`QUANTUM_OF_ENV`)."""
    text = os.environ.get(QUANTUM_OF_ENV, "").strip()
    if not text:
        return 0.0
    if not text.isdigit():
        raise ConfigError(f"{QUANTUM_OF_ENV}: expected a worker count, got {text!r}")
    return arrival_quantum(int(text))


@contextlib.contextmanager
def tuned_gc() -> Iterator[None]:
    """The collector as a run's event loop wants it, in every process that runs scenarios
    (the coordinator or single process, and each worker). The fleet's long-lived objects
    (devices, bank, histograms) never become garbage: moving them out of the collector's sight
    and collecting young objects less often saves a few percent of CPU per request at
    thousands of requests per second, and no full collection walks them mid-run."""
    gc.collect()
    gc.freeze()
    old = gc.get_threshold()
    gc.set_threshold(50_000, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


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


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` is set within ``timeout`` seconds. A cancel always propagates:
    Python 3.11's ``asyncio.wait_for`` returns the result and drops the cancel when the awaited
    future finished in the loop turn the cancel came in (and its timeout path may turn a cancel
    into the ``TimeoutError`` its callers suppress). The coordinator's ticker survived its
    cancel that way, a worker's tick arriving as the run stopped, and the run never ended."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=max(timeout, 0.0))
    finally:
        if not waiter.done():
            waiter.cancel()
    return event.is_set()


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float, stop: asyncio.Event) -> bool:
    """Sleep until loop time ``when``; False if ``stop`` was set first."""
    delay = when - loop.time()
    if delay <= 0:
        return not stop.is_set()
    return not await wait_set(stop, delay)


class TaskStarter(Generic[D]):
    """A :class:`Starter` for iteration code written as a coroutine: one task per iteration."""

    def __init__(self, iterate: Iterate[D]) -> None:
        self._iterate = iterate
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, dev: D, scheduled: float, finished: Callable[[], None]) -> None:
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
