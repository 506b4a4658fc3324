"""The coordinator of workers times no request (issue 12): its loop-lag probe, which woke it
every 20 ms on the cores its workers run on, does not run once the workers are its
scenarios; its CPU figures are still sampled. A real Environment, monitoring and WorkerPool on
virtual time; the workers are the channel seam."""

from __future__ import annotations

import asyncio
from typing import Any

import vtime
from fake_workers import FakeWorker, coordinator, up_config, up_tick

from simulator.run import monitoring
from simulator.run.runner import Environment
from simulator.run.workers import Final, FleetGenerator

TICKS = 3


class _Worker(FakeWorker):
    """A worker that sends its tick n at the end of its second n."""

    def go(self, loop: asyncio.AbstractEventLoop, start: float) -> None:
        for n in range(1, TICKS + 1):
            loop.call_at(start + n + 0.01, self.deliver, up_tick(self.k, n, 10))
        loop.call_at(start + TICKS + 0.1, self.deliver, Final(self.k, (), (), None, False))


def test_the_coordinator_runs_no_loop_lag_probe() -> None:
    """Before: the probe task ran through the whole run (running at every tick: [True, True,
    True, True]) though FleetGenerator drops the coordinator's loop lag."""
    probing: list[bool] = []
    points: list[dict[str, Any]] = []

    async def main() -> None:
        # as a run does: the gen sampler's probe started (on this loop)
        env = coordinator(up_config(f"{TICKS}s"), _Worker, 2, monitor=True)

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
