"""The coordinator of workers times no request (issue 12): its loop-lag probe, which woke it
every 20 ms on the cores its workers run on, does not run once the workers are its
scenarios; its CPU figures are still sampled. A real Environment, monitoring and WorkerPool on
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
from simulator.run import monitoring
from simulator.run.runner import Environment
from simulator.run.workers import (
    Final,
    FleetGenerator,
    Go,
    Ready,
    ScenarioTick,
    Snapshot,
    Stop,
    Warm,
    WorkerMessage,
    WorkerPool,
)

TICKS = 3


class _Worker:
    """A worker that sends its tick n at the end of its second n."""

    def __init__(self, k: int) -> None:
        self.k = k
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
        for n in range(1, TICKS + 1):
            stats = IntervalStats(requests=10, iterations=10)
            snap = Snapshot(self.k, n, (ScenarioTick("up", stats, 1, 1, 1),), ())
            loop.call_at(start + n + 0.01, self.deliver, snap)
        loop.call_at(start + TICKS + 0.1, self.deliver, Final(self.k, (), (), None, False))

    async def close(self, deadline: float) -> None:
        pass


class _Launcher:
    async def launch(self, jobs: Any) -> list[Any]:
        return [_Worker(job.index) for job in jobs]

    async def close(self) -> None:
        pass


def test_the_coordinator_runs_no_loop_lag_probe() -> None:
    """Before: the probe task ran through the whole run (running at every tick: [True, True,
    True, True]) though FleetGenerator drops the coordinator's loop lag."""
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 10,
                    "duration": f"{TICKS}s",
                    "pre_allocated_devices": 2,
                }
            }
        }
    )
    probing: list[bool] = []
    points: list[dict[str, Any]] = []

    async def main() -> None:
        env = Environment(cfg, FakeTransport())
        monitoring.attach(env, cfg, None)  # as a run does: the gen sampler's probe started
        pool = WorkerPool(cfg, "http://127.0.0.1:9", {}, 2, launcher=_Launcher())
        env.remote = pool
        env.companions.insert(0, pool)

        def on_tick(env: Environment, point: dict[str, Any]) -> None:
            (fleet,) = [s for prefix, s in env.samplers if prefix == "gen"]
            assert isinstance(fleet, FleetGenerator)
            own = fleet.own
            assert isinstance(own, monitoring.GeneratorSampler)
            probing.append(own._task is not None and not own._task.done())
            points.append(point)

        env.tick_hooks.append(on_tick)
        await env.run()

    vtime.run_virtual(main())
    assert probing and not any(probing), probing
    # the coordinator's own CPU is still sampled (the stage table's "the coordinator" rule)
    assert all(p.get("gen.cpu_percent") is not None for p in points), points
