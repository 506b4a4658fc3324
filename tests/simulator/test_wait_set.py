"""A cancel is never lost while the run waits on an event with a timeout. Python 3.11's
``asyncio.wait_for`` returns the awaited result and drops the cancel when that result came in
the loop turn the cancel did: the coordinator's ticker, cancelled as the run stopped while a
worker's tick arrived, survived in ``WorkerPool.tick_ready`` and ticked on; the run never ended
(``test_workers_sigterm``'s ready phase hung 1 run in 12 under 3 busy loops)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Awaitable, Callable

import pytest

from simulator.config import load_config
from simulator.executors import wait_set
from simulator.run.workers import WorkerPool

ROOT = pathlib.Path(__file__).resolve().parents[2]


async def _cancel_as_the_event_is_set(
    event: asyncio.Event, waiting: Callable[[], Awaitable[object]]
) -> asyncio.Task[object]:
    """Start ``waiting``; in one loop turn set ``event`` and, once the event's waiter has
    finished but before whoever awaits it is told, cancel the waiting task."""
    loop = asyncio.get_running_loop()
    task: asyncio.Task[object] = asyncio.ensure_future(waiting())
    await asyncio.sleep(0.01)  # it is waiting now

    def set_then_cancel() -> None:
        event.set()  # the waiter's step is queued first, then this cancel
        loop.call_soon(task.cancel)

    loop.call_soon(set_then_cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    return task


def test_wait_set_cancelled_as_its_event_is_set_is_cancelled() -> None:
    async def main() -> None:
        event = asyncio.Event()
        task = await _cancel_as_the_event_is_set(event, lambda: wait_set(event, 30.0))
        assert task.cancelled()

    asyncio.run(main())


def test_wait_set_says_whether_the_event_came_in_time() -> None:
    async def main() -> None:
        event = asyncio.Event()
        assert await wait_set(event, 0.01) is False
        asyncio.get_running_loop().call_later(0.01, event.set)
        assert await wait_set(event, 30.0) is True
        assert await wait_set(event, 0.0) is True  # already set: at once

    asyncio.run(main())


def test_tick_ready_cancelled_as_the_tick_arrives_is_cancelled() -> None:
    """Before (``asyncio.wait_for``): the task returned normally, its cancel dropped."""
    cfg = load_config(ROOT / "configs" / "smoke.toml")

    async def main() -> None:
        pool = WorkerPool(cfg, "", {}, 2)
        pool._ticked = asyncio.Event()
        pool._channels = [object(), object()]  # type: ignore[list-item]  # two running workers
        pool._start = asyncio.get_running_loop().time()

        async def waiting() -> None:
            await pool.tick_ready(5)  # tick 5 is ~5 s away: it waits for the workers' ticks

        def arrived() -> None:
            pool._seen_tick = {0: 5, 1: 5}

        event = pool._ticked
        orig_set = event.set

        def set_after_arrival() -> None:
            arrived()
            orig_set()

        event.set = set_after_arrival  # type: ignore[method-assign]
        task = await _cancel_as_the_event_is_set(event, waiting)
        assert task.cancelled()

    asyncio.run(main())
