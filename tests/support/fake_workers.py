"""Workers as the coordinator sees them through the channel seam: a real Environment and
WorkerPool whose workers are fakes that send their messages on the loop's clock (virtual or
not), so what the coordinator makes of ticks, endings and final reports is tested without
processes. Shared by the tests of the coordinator's first point, duration, merge and probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import vtime

from simulator.config import RunConfig, parse_config
from simulator.http import FakeTransport
from simulator.metrics import IntervalStats
from simulator.run import monitoring
from simulator.run.runner import Environment, RunResult
from simulator.run.workers import (
    Go,
    Ready,
    ScenarioTick,
    Snapshot,
    Stop,
    Warm,
    WorkerJob,
    WorkerMessage,
    WorkerPool,
)


class FakeWorker:
    """Ready when opened and again, warmed, on Warm (no connections to open); Stop is
    ignored; on Go, :meth:`go` schedules the worker's messages."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.where = f"pid {k}"
        self.deliver: Callable[[WorkerMessage], None] = lambda msg: None
        self.gone: Callable[[str], None] = lambda reason: None

    def open(self, deliver: Callable[[WorkerMessage], None], gone: Callable[[str], None]) -> None:
        self.deliver, self.gone = deliver, gone
        asyncio.get_running_loop().call_soon(deliver, Ready(self.k))

    def send(self, msg: Any) -> None:
        if isinstance(msg, Stop):
            return
        if isinstance(msg, Warm):
            asyncio.get_running_loop().call_soon(self.deliver, Ready(self.k, warmed=True))
            return
        assert isinstance(msg, Go)
        loop = asyncio.get_running_loop()
        self.go(loop, loop.time() + (msg.start - time.time()))  # the go's wall clock on this loop

    def go(self, loop: asyncio.AbstractEventLoop, start: float) -> None:
        """Schedule this worker's messages with ``loop.call_at``; ``start``: the common start."""
        raise NotImplementedError

    async def close(self, deadline: float) -> None:
        pass


class FakeLauncher:
    """Launches ``make(k)`` for job k."""

    def __init__(self, make: Callable[[int], FakeWorker]) -> None:
        self.make = make

    async def launch(self, jobs: Sequence[WorkerJob]) -> list[Any]:
        return [self.make(job.index) for job in jobs]

    async def close(self) -> None:
        pass


def up_config(duration: str) -> RunConfig:
    """One scenario "up": 10 arrivals/s for ``duration``, 2 devices."""
    return parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 10,
                    "duration": duration,
                    "pre_allocated_devices": 2,
                }
            }
        }
    )


def up_tick(k: int, n: int, requests: int) -> Snapshot:
    """Worker ``k``'s tick ``n``: ``requests`` requests (and iterations) of "up"."""
    stats = IntervalStats(requests=requests, iterations=requests)
    return Snapshot(k, n, (ScenarioTick("up", stats, 1, 1, 1),), ())


def coordinator(
    cfg: RunConfig, make: Callable[[int], FakeWorker], workers: int, *, monitor: bool = False
) -> Environment:
    """The coordinator's Environment over ``workers`` fakes, wired as simulator.session does
    (``monitor``: its samplers attached first). Call it on the running loop: the generator
    sampler's loop-lag probe only starts on one."""
    env = Environment(cfg, FakeTransport())
    if monitor:
        monitoring.attach(env, cfg, None)
    pool = WorkerPool(cfg, "http://127.0.0.1:9", {}, workers, launcher=FakeLauncher(make))
    env.remote = pool
    env.companions.insert(0, pool)
    return env


def run_coordinator(
    cfg: RunConfig, make: Callable[[int], FakeWorker], workers: int, *, virtual: bool = True
) -> RunResult:
    """Run :func:`coordinator` to its end, on virtual time unless ``virtual`` is False."""

    async def main() -> RunResult:
        return await coordinator(cfg, make, workers).run()

    return vtime.run_virtual(main()) if virtual else asyncio.run(main())
