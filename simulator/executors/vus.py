"""The closed model's driver (VU executors): each active device loops over iterations; the
spec says how many are active when (``vu_changes``), how long a removed one may finish, and
whether each device stops after a number of iterations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from simulator.executors.base import D, Drive, ExecutorEvents, Iterate
from simulator.executors.runtime import schedule_clock, sleep_until


class VUExecutor(Protocol):
    """What the closed-model driver asks of a VU spec."""

    def total_duration(self) -> float: ...

    def iteration_limit(self) -> int | None: ...

    def ramp_down_grace(self, graceful_stop: float) -> float: ...

    def vu_changes(self) -> list[tuple[float, int]]: ...


async def _drain(tasks: set[asyncio.Task[None]], grace: float, events: ExecutorEvents) -> None:
    """Give running iterations ``grace`` seconds, then cancel and count the rest. One the
    ramp-down already cancelled (and counted) may still be pending here: not counted again."""
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=grace)
        if pending:
            fresh = [t for t in pending if not t.cancelling()]
            for t in fresh:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if fresh:
                events.interrupted(len(fresh))


async def run_vus(
    ex: VUExecutor,
    *,
    start: float,
    make_device: Callable[[int], D],
    iterate: Iterate[D],
    events: ExecutorEvents,
    stop: asyncio.Event,
    graceful_stop: float,
) -> None:
    """Closed model: keep the planned number of devices looping until the end."""
    loop = asyncio.get_running_loop()
    now = schedule_clock(loop)
    end = start + ex.total_duration()
    ending = asyncio.Event()  # the scheduled duration is over: no new iterations
    devices: list[D] = []
    loops: dict[int, asyncio.Task[None]] = {}
    retire: dict[int, float] = {}  # index → loop time by which it must have stopped
    running: dict[int, asyncio.Task[None]] = {}
    limit = ex.iteration_limit()
    started: dict[int, int] = {}  # index → iterations started (per-vu-iterations' drops)
    finished_vus = 0

    async def vu(dev: D) -> None:
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
        grace = ex.ramp_down_grace(graceful_stop)
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
                    it = running[idx]
                    if not it.done() and not it.cancelling():  # finished, or already cut
                        it.cancel()
                        events.interrupted(1)
                    retire.pop(idx, None)

    plan = ex.vu_changes()
    enforcer = loop.create_task(enforce_ramp_down())
    try:
        for off, n in plan:
            if not await sleep_until(loop, start + off, stop):
                break
            set_active(n)
        if limit is not None:
            all_done: asyncio.Future[Any] = asyncio.gather(*loops.values(), return_exceptions=True)
            waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                [all_done, waiter],
                timeout=max(end - loop.time(), 0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
        else:
            await sleep_until(loop, end, stop)
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


async def drive_vus(
    ex: VUExecutor, run: Drive[D], make_device: Callable[[int], D] | None = None
) -> None:
    """``run_vus`` with a run's hand-off, for every VU spec's ``drive`` (one call site)."""
    await run_vus(
        ex,
        start=run.start,
        make_device=make_device or run.behaviour.make_device,
        iterate=run.behaviour.iterate,
        events=run.events,
        stop=run.stop,
        graceful_stop=run.graceful_stop,
    )
