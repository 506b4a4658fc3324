"""A run over workers lasts until the workers' runs end, as each measured it (k6's duration
ends with its executors, graceful stop included), not until they have also closed their
connections, written their device rows and exited. Before, the coordinator stamped the
duration once every final report was in: at 1.5x a 26,000/s ceiling (32 KB, nginx) that tail
was 0.3 s of an 11 s run, in the duration and so in every rate of the summary. A real
Environment and WorkerPool; the workers are the channel seam (their messages on the loop's
clock), so the duration is what they say, not a timing."""

from __future__ import annotations

import asyncio

import pytest
from fake_workers import FakeWorker, run_coordinator, up_config

from simulator.run.runner import RunResult
from simulator.run.workers import Ending, Final

#: when each fake worker's run ends (seconds after the common start), and its final report
RUN_ENDS = (0.2, 0.3)
FINAL_AT = 0.9


class _Worker(FakeWorker):
    """Its run ends at ``ended`` (Ending), its final report comes at FINAL_AT; ``silent``: an
    Ending without the figure (a worker from before it)."""

    def __init__(self, k: int, ended: float, silent: bool = False) -> None:
        super().__init__(k)
        self.ended = ended
        self.silent = silent

    def go(self, loop: asyncio.AbstractEventLoop, start: float) -> None:
        ending = Ending(self.k, None if self.silent else self.ended)
        loop.call_at(start + self.ended, self.deliver, ending)
        loop.call_at(start + FINAL_AT, self.deliver, Final(self.k, (), (), None, False))


def _run(workers: list[_Worker]) -> RunResult:
    return run_coordinator(up_config("1s"), workers.__getitem__, len(workers), virtual=False)


def test_the_duration_ends_with_the_last_workers_run() -> None:
    """Before the fix: the duration ran to the final reports (>= 0.9 s), not 0.3 s."""
    result = _run([_Worker(k, ended) for k, ended in enumerate(RUN_ENDS)])
    assert result.duration == pytest.approx(max(RUN_ENDS))


def test_without_every_workers_end_the_coordinators_clock_counts() -> None:
    result = _run([_Worker(0, 0.2), _Worker(1, 0.3, silent=True)])
    assert result.duration >= FINAL_AT
