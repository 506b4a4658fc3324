"""A run over workers lasts until the workers' runs end, as each measured it (k6's duration
ends with its executors, graceful stop included), not until they have also closed their
connections, written their device rows and exited. Before, the coordinator stamped the
duration once every final report was in: at 1.5x a 26,000/s ceiling (32 KB, nginx) that tail
was 0.3 s of an 11 s run, in the duration and so in every rate of the summary. A real
Environment and WorkerPool; the workers are the channel seam (their messages on the loop's
clock), so the duration is what they say, not a timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from simulator.config import parse_config
from simulator.http import FakeTransport
from simulator.run.runner import Environment, RunResult
from simulator.run.workers import (
    Ending,
    Final,
    Go,
    Ready,
    Stop,
    Warm,
    WorkerMessage,
    WorkerPool,
)

#: when each fake worker's run ends (seconds after the common start), and its final report
RUN_ENDS = (0.2, 0.3)
FINAL_AT = 0.9


class _Worker:
    """Its run ends at ``ended`` (Ending), its final report comes at FINAL_AT; ``silent``: an
    Ending without the figure (a worker from before it)."""

    def __init__(self, k: int, ended: float, silent: bool = False) -> None:
        self.k = k
        self.ended = ended
        self.silent = silent
        self.where = f"pid {k}"
        self.deliver: Callable[[WorkerMessage], None] = lambda msg: None

    def open(self, deliver: Callable[[WorkerMessage], None], gone: Callable[[str], None]) -> None:
        self.deliver = deliver
        asyncio.get_running_loop().call_soon(deliver, Ready(self.k))

    def send(self, msg: Any) -> None:
        if isinstance(msg, Stop):
            return
        if isinstance(msg, Warm):
            asyncio.get_running_loop().call_soon(self.deliver, Ready(self.k, warmed=True))
            return
        assert isinstance(msg, Go)
        loop = asyncio.get_running_loop()
        start = loop.time() + (msg.start - time.time())
        ending = Ending(self.k, None if self.silent else self.ended)
        loop.call_at(start + self.ended, self.deliver, ending)
        loop.call_at(start + FINAL_AT, self.deliver, Final(self.k, (), (), None, False))

    async def close(self, deadline: float) -> None:
        pass


class _Launcher:
    def __init__(self, workers: list[_Worker]) -> None:
        self.workers = workers

    async def launch(self, jobs: Any) -> list[Any]:
        return list(self.workers)

    async def close(self) -> None:
        pass


def _run(workers: list[_Worker]) -> RunResult:
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 10,
                    "duration": "1s",
                    "pre_allocated_devices": 2,
                }
            }
        }
    )

    async def main() -> RunResult:
        env = Environment(cfg, FakeTransport())
        pool = WorkerPool(cfg, "http://127.0.0.1:9", {}, len(workers), launcher=_Launcher(workers))
        env.remote = pool
        env.companions.insert(0, pool)
        return await env.run()

    return asyncio.run(main())


def test_the_duration_ends_with_the_last_workers_run() -> None:
    """Before the fix: the duration ran to the final reports (>= 0.9 s), not 0.3 s."""
    result = _run([_Worker(k, ended) for k, ended in enumerate(RUN_ENDS)])
    assert result.duration == pytest.approx(max(RUN_ENDS))


def test_without_every_workers_end_the_coordinators_clock_counts() -> None:
    result = _run([_Worker(0, 0.2), _Worker(1, 0.3, silent=True)])
    assert result.duration >= FINAL_AT
