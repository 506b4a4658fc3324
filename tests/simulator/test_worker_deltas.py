"""A worker's per-tick snapshot (issue 12, CPU per request with workers): its deltas add up to
the totals exactly, and a tick costs what the tick recorded — the worker keeps nothing of a
closed tick's histograms (before: every trend was diffed against a kept copy of all its
buckets so far, each tick, and held twice)."""

from __future__ import annotations

import gc
import random
import tracemalloc

from simulator.metrics import Registry
from simulator.metrics.histogram import Histogram
from simulator.metrics.registry import Counter, Trend
from simulator.run.workers import DeltaTracker, SeriesDelta

TAGS = (("scenario", "s"),)


def _merge(into: Registry, deltas: tuple[SeriesDelta, ...]) -> None:
    for d in deltas:
        into.get(d.metric, d.tags).merge(d.value)


def test_deltas_add_up_to_the_totals_tick_by_tick() -> None:
    rng = random.Random(7)
    worker, merged, whole = Registry(), Registry(), Histogram()
    tracker = DeltaTracker(worker)
    for tick in range(5):
        for _ in range(300 * (tick + 1)):
            us = int(rng.lognormvariate(7, 1))
            worker.get("http_req_duration", TAGS).add_us(us)
            whole.record(us)
        worker.get("http_reqs", TAGS).add(300 * (tick + 1))
        _merge(merged, tracker.take())
    assert tracker.take() == ()  # nothing new: nothing sent
    got = merged.get("http_req_duration", TAGS)
    assert isinstance(got, Trend)
    h = got.hist
    assert (h.counts, h.count, h.total, h.min, h.max) == (
        whole.counts,
        whole.count,
        whole.total,
        whole.min,
        whole.max,
    )
    reqs = merged.get("http_reqs", TAGS)
    assert isinstance(reqs, Counter) and reqs.value == 300 * (1 + 2 + 3 + 4 + 5)


def test_a_closed_tick_leaves_nothing_behind_in_the_worker() -> None:
    """4 trends × 2,000 distinct buckets in one tick; once its snapshot is taken the worker
    holds under 5 % of what those histograms took (before: about twice as much — the
    registry's histograms plus the tracker's copies, diffed in full every later tick)."""
    names = [f"t{i}" for i in range(4)]
    reg = Registry()
    for name in names:
        reg.define(name, "trend", "time")
    tracker = DeltaTracker(reg)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for name in names:
            series = reg.get(name, TAGS)
            for us in range(3000, 5000):
                series.add_us(us)
        recorded = tracemalloc.get_traced_memory()[0] - before
        deltas = tracker.take()
        assert sum(d.value.hist.count for d in deltas if isinstance(d.value, Trend)) == 4 * 2000
        del deltas
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert recorded > 4 * 2000 * 20  # the histograms really took room
    assert kept < 0.05 * recorded, (kept, recorded)
    # and the next tick's snapshot carries only the next tick
    reg.get(names[0], TAGS).add_us(10)
    (only,) = tracker.take()
    assert isinstance(only.value, Trend) and only.value.hist.counts == {10: 1}
