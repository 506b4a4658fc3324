"""The coordinator's first point (issue 12): at 1.5x their ceiling both workers' first ticks
came 1.5 s after their second (every device connects at start-up) while point 1 waited only
half a second: point 1 closed empty and second 1 landed in point 2 — a first second of zero
requests for the stage table, the live display and an ``abort_on_fail`` threshold. A real
Environment and WorkerPool on virtual time; the workers are the channel seam, sending their
ticks when told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fake_workers import FakeWorker, run_coordinator, up_config, up_tick

from simulator.run.runner import RunResult
from simulator.run.workers import Final

#: each worker's second n: 10 n requests, so a second in the wrong point shows
TICKS = 3


class _Worker(FakeWorker):
    """A worker that sends its tick n ``late(n)`` seconds after its second n ends."""

    def __init__(self, k: int, late: Callable[[int], float]) -> None:
        super().__init__(k)
        self.late = late

    def go(self, loop: asyncio.AbstractEventLoop, start: float) -> None:
        at = start
        for n in range(1, TICKS + 1):
            at = max(at + 1e-6, start + n + self.late(n))  # in order, as over a pipe
            loop.call_at(at, self.deliver, up_tick(self.k, n, 10 * n))
        loop.call_at(at + 0.1, self.deliver, Final(self.k, (), (), None, False))


def _run(late: Callable[[int, int], float]) -> RunResult:
    def make(k: int) -> _Worker:
        return _Worker(k, lambda n: late(k, n))

    return run_coordinator(up_config(f"{TICKS}s"), make, 2)


def _seconds(result: RunResult) -> list[int]:
    return [p["scenarios"]["up"]["requests"] for p in result.timeline]


def test_workers_whose_first_ticks_come_late_still_fill_point_1() -> None:
    """Both first ticks 1.5 s late (then on time). Before: [0, 60, 60]: point 1 empty,
    second 1 of both workers in point 2."""
    result = _run(lambda k, n: 1.5 if n == 1 else 0.05)
    assert _seconds(result)[:TICKS] == [20, 40, 60], result.timeline
    assert sum(_seconds(result)) == 120
    assert not [n for n in result.notes if "came after" in n], result.notes


def test_a_first_tick_later_than_the_longest_wait_joins_point_2() -> None:
    """The wait stays bounded (MAX_TICK_GRACE): a worker whose first tick comes later does
    not stall the run; its tick joins the next point and is noted, nothing is lost."""
    result = _run(lambda k, n: 2.5 if (k, n) == (1, 1) else 0.05)
    seconds = _seconds(result)
    assert seconds[0] == 10, result.timeline  # worker 1's second 1 alone, closed at 3 s
    assert sum(seconds) == 120
    notes = [n for n in result.notes if "came after" in n]
    assert len(notes) == 1 and "worker 2 of 2" in notes[0], result.notes
