"""Arrivals a worker never reached (its run stopped first) are counted by the coordinator:
each worker's ``Final`` carries its count, and the summary notes the run's sum once. Before,
a worker's unreached arrivals were dropped with its run: the merged run's iterations +
dropped_iterations fell short of the plan with no word. A real Environment and WorkerPool on
virtual time; the workers are the channel seam."""

from __future__ import annotations

import asyncio

from fake_workers import FakeWorker, run_coordinator, up_config, up_tick

from simulator.run.runner import RunResult, unreached_note
from simulator.run.workers import Final


class _Worker(FakeWorker):
    """Ticks 1 and 2, then its final report with ``unreached`` arrivals of scenario "up";
    ``vanish``: it ends without a final report (killed)."""

    def __init__(self, k: int, unreached: int, vanish: bool = False) -> None:
        super().__init__(k)
        self.unreached = unreached
        self.vanish = vanish

    def go(self, loop: asyncio.AbstractEventLoop, start: float) -> None:
        for n in (1, 2):
            loop.call_at(start + n + 0.01, self.deliver, up_tick(self.k, n, 10))
        if self.vanish:
            loop.call_at(start + 2.1, self.gone, "exited (code -9) without its final report")
            return
        unreached = (("up", self.unreached),) if self.unreached else ()
        final = Final(self.k, (), (), None, True, unreached=unreached)
        loop.call_at(start + 2.1, self.deliver, final)


def _run(workers: list[_Worker]) -> RunResult:
    return run_coordinator(up_config("4s"), workers.__getitem__, len(workers))


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
