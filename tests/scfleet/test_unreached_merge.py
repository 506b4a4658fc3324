"""Arrivals a worker never reached (its run stopped first) are counted by the coordinator:
each worker's ``Final`` carries its count, and the summary notes the run's sum once. Before,
a worker's unreached arrivals were dropped with its run: the merged run's iterations +
dropped_iterations fell short of the plan with no word. A real Environment and WorkerPool on
virtual time; the workers are the channel seam."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import vtime

from simulator.config import parse_config
from simulator.http import FakeTransport
from simulator.metrics import IntervalStats
from simulator.run.runner import Environment, RunResult, unreached_note
from simulator.run.workers import (
    Final,
    Go,
    Ready,
    ScenarioTick,
    Snapshot,
    Stop,
    Warm,
    WorkerMessage,
    WorkerPool,
)


class _Worker:
    """Ticks 1 and 2, then its final report with ``unreached`` arrivals of scenario "up";
    ``vanish``: it ends without a final report (killed)."""

    def __init__(self, k: int, unreached: int, vanish: bool = False) -> None:
        self.k = k
        self.unreached = unreached
        self.vanish = vanish
        self.where = f"pid {k}"
        self.deliver: Callable[[WorkerMessage], None] = lambda msg: None
        self.gone: Callable[[str], None] = lambda reason: None

    def open(self, deliver: Callable[[WorkerMessage], None], gone: Callable[[str], None]) -> None:
        self.deliver, self.gone = deliver, gone
        asyncio.get_running_loop().call_soon(deliver, Ready(self.k))

    def send(self, msg: Any) -> None:
        if isinstance(msg, Stop):
            return
        if isinstance(msg, Warm):  # its connections: none to open
            asyncio.get_running_loop().call_soon(self.deliver, Ready(self.k, warmed=True))
            return
        assert isinstance(msg, Go)
        loop = asyncio.get_running_loop()
        start = loop.time() + (msg.start - time.time())
        for n in (1, 2):
            stats = IntervalStats(requests=10, iterations=10)
            snap = Snapshot(self.k, n, (ScenarioTick("up", stats, 1, 1, 1),), ())
            loop.call_at(start + n + 0.01, self.deliver, snap)
        if self.vanish:
            loop.call_at(start + 2.1, self.gone, "exited (code -9) without its final report")
            return
        unreached = (("up", self.unreached),) if self.unreached else ()
        final = Final(self.k, (), (), None, True, unreached=unreached)
        loop.call_at(start + 2.1, self.deliver, final)

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
                    "duration": "4s",
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

    return vtime.run_virtual(main())


def test_the_workers_unreached_arrivals_are_summed_into_one_note() -> None:
    result = _run([_Worker(0, 7), _Worker(1, 5)])
    notes = [n for n in result.notes if "neither started nor dropped" in n]
    assert notes == [unreached_note("up", 12)], result.notes


def test_no_note_when_every_arrival_was_reached() -> None:
    result = _run([_Worker(0, 0), _Worker(1, 0)])
    assert not [n for n in result.notes if "neither started nor dropped" in n], result.notes


def test_a_worker_that_ends_without_its_report_is_noted_as_uncounted() -> None:
    """Its counts since its last tick are gone: the summary says the plan may not add up."""
    result = _run([_Worker(0, 0), _Worker(1, 0, vanish=True)])
    notes = [n for n in result.notes if "may fall short of the plan" in n]
    assert len(notes) == 1 and "worker 2 of 2" in notes[0], result.notes
