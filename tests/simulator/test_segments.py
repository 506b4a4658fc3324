"""Execution segments (issue 12): N segments together are exactly the one-process schedule,
and every device belongs to one segment, keeping its global index (identity)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
import vtime

from simulator.config import (
    ConstantArrivalRate,
    ConstantVUs,
    PerVUIterations,
    RampingArrivalRate,
    RampingVUs,
    Stage,
)
from simulator.executors import WHOLE, Drive, SegmentSequence, arrival_offsets

run_virtual = vtime.run_virtual

EXECUTORS: dict[str, Any] = {
    "constant-arrival-rate": ConstantArrivalRate(
        rate=37, time_unit=1, duration=3, pre_allocated_devices=5, max_devices=11
    ),
    "ramping-arrival-rate": RampingArrivalRate(
        start_rate=0,
        time_unit=1,
        pre_allocated_devices=3,
        max_devices=9,
        stages=(Stage(2, 40), Stage(1, 40), Stage(2, 5)),
    ),
    "constant-vus": ConstantVUs(vus=13, duration=2),
    "ramping-vus": RampingVUs(
        start_vus=2,
        stages=(Stage(2, 17), Stage(1, 17), Stage(2, 4), Stage(0, 9)),
        graceful_ramp_down=0.5,
    ),
    "per-vu-iterations": PerVUIterations(vus=10, iterations=4, max_duration=5),
}
PARTS = (1, 2, 3, 7)


def _vu_activations(ex: Any) -> list[tuple[float, int]]:
    """The one-process schedule's device activations, from the spec's own plan: when the
    count rises from a to b, devices a … b−1 become active."""
    out: list[tuple[float, int]] = []
    active = 0
    for off, n in ex.vu_changes():
        out.extend((off, d) for d in range(active, n))
        active = n
    return out


def _single_schedule(ex: Any) -> list[tuple[float, int]]:
    if ex.pre_allocated() is not None:
        return [(off, i) for i, off in enumerate(arrival_offsets(ex))]
    return _vu_activations(ex)


@pytest.mark.parametrize("parts", PARTS)
@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_union_of_segments_is_the_single_schedule(kind: str, parts: int) -> None:
    ex = EXECUTORS[kind]
    single = _single_schedule(ex)
    assert len(single) > parts  # every segment has something to do
    assert sorted(ex.for_segment(WHOLE).planned_starts()) == sorted(single)
    shares = [
        ex.for_segment(seg).planned_starts() for seg in SegmentSequence.even(parts).segments()
    ]
    union = Counter(s for share in shares for s in share)
    assert union == Counter(single)  # same starts, same times, none twice
    # striped, not cut in time: every segment starts within the first `parts` whole-run starts
    first = sorted(single)[: parts * 2]
    for share in shares:
        assert share and min(share) <= max(first)
    if ex.pre_allocated() is not None:
        total = ex.expected_iterations()
        assert sum(ex.for_segment(s).expected_iterations() for s in _segs(parts)) == total


def _segs(parts: int) -> list[Any]:
    return SegmentSequence.even(parts).segments()


@pytest.mark.parametrize("parts", PARTS)
@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_device_indices_partition_the_devices(kind: str, parts: int) -> None:
    ex = EXECUTORS[kind]
    owned = [ex.for_segment(seg).device_indices() for seg in _segs(parts)]
    flat = [d for share in owned for d in share]
    assert sorted(flat) == list(range(ex.device_bound()))
    assert sum(ex.for_segment(seg).device_bound() for seg in _segs(parts)) == ex.device_bound()


def test_uneven_sequence_stripes_exact_shares() -> None:
    seq = SegmentSequence(
        (Fraction(0), Fraction(1, 3), Fraction(1, 2), Fraction(3, 4), Fraction(1))
    )
    segs = seq.segments()
    assert [len(s.positions) for s in segs] == [4, 2, 3, 3]  # lengths × 12
    for n in range(0, 50):
        shares = [s.scale(n) for s in segs]
        assert sum(shares) == n
        owners = [[s.index for s in segs if s.owns(i)] for i in range(n)]
        assert all(len(o) == 1 for o in owners)
        # every prefix is within one index of each segment's exact share (striped, even)
        assert all(abs(sh - n * s.length) < 1 for sh, s in zip(shares, segs, strict=True))
    for s in segs:
        assert [s.nth(k) for k in range(s.scale(40))] == [i for i in range(40) if s.owns(i)]


@pytest.mark.parametrize("kind", ["constant-arrival-rate", "ramping-arrival-rate"])
def test_a_segments_arrival_plan_starts_exactly_the_iterations_it_owns(kind: str) -> None:
    """The plan a worker drives (its own ownership test, a set lookup per arrival of the whole
    schedule) starts what Segment.owns gives it, uneven cycles too, and skipping stays exact."""
    ex = EXECUTORS[kind]
    uneven = SegmentSequence(
        (Fraction(0), Fraction(1, 3), Fraction(1, 2), Fraction(3, 4), Fraction(1))
    )
    for segs in (_segs(2), _segs(7), uneven.segments()):
        for seg in segs:
            share = ex.for_segment(seg)
            plan, _skip = share.arrival_plan()
            assert list(plan) == [off for off, _i in share.planned_starts()]
            if kind != "constant-arrival-rate":
                continue  # only a constant rate counts its drops by skipping (O(1))
            whole = list(arrival_offsets(ex))
            plan, skip = share.arrival_plan()
            cut = whole[len(whole) // 2]
            skipped = skip(cut)  # the arrivals due by the middle, as a far-behind schedule drops
            due = [i for i, off in enumerate(whole) if off <= cut + 1e-9]
            assert skipped == sum(seg.owns(i) for i in due)
            assert list(plan) == [off for off, i in share.planned_starts() if i > max(due)]


def test_a_constant_rate_segment_computes_only_its_own_arrivals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker of N at a constant rate computes the offsets of its own arrivals only, as a
    one-process run at its share of the rate does: walking the whole schedule and skipping
    the other workers' cost each worker of 2 one offset and one ownership test more per
    arrival it started. Skipping (a far-behind schedule's drops) stays O(1) too."""
    from simulator.executors.constant_arrival_rate import ConstantPlan

    walked = computed = 0
    step, offset = ConstantPlan.__next__, ConstantPlan.offset

    def counted_next(self: ConstantPlan) -> float:
        nonlocal walked
        walked += 1
        return step(self)

    def counted_offset(self: ConstantPlan, i: int) -> float:
        nonlocal computed
        computed += 1
        return offset(self, i)

    monkeypatch.setattr(ConstantPlan, "__next__", counted_next)
    monkeypatch.setattr(ConstantPlan, "offset", counted_offset)
    ex = EXECUTORS["constant-arrival-rate"]
    for seg in [*_segs(2), *_segs(7)]:
        walked = computed = 0
        share = ex.for_segment(seg)
        plan, skip = share.arrival_plan()
        own = share.expected_iterations()
        assert len(list(plan)) == own
        assert (walked, computed) == (0, own)
        plan, skip = share.arrival_plan()
        assert skip(2.0) == seg.scale(ConstantPlan(ex).due(2.0))
        assert (walked, computed) == (0, own)


@pytest.mark.parametrize(
    "bounds", [(0, 1, 1), (Fraction(1, 2), 1), (0, Fraction(1, 2), Fraction(1, 2), 1)]
)
def test_bad_sequences_are_refused(bounds: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="from 0 to 1"):
        SegmentSequence(tuple(Fraction(b) for b in bounds))


class _Dev:
    def __init__(self, index: int) -> None:
        self.index = index
        self.seq = 0


class _Events:
    def __init__(self) -> None:
        self.dropped_n = 0

    unreached_n = 0  # arrivals of the plan neither started nor dropped (stopped)

    def dropped(self, count: int = 1, *, pool_full: bool = False) -> None:
        self.dropped_n += count

    def unreached(self, count: int) -> None:
        self.unreached_n += count

    def active(self, count: int) -> None:
        pass

    def interrupted(self, count: int) -> None:
        pass

    def capacity(self, count: int) -> None:
        pass


class _Behaviour:
    """Records (scheduled offset, device index, device sequence) for every iteration."""

    def __init__(self, start: float, log: list[tuple[float, int, int]], work: float) -> None:
        self.start_at = start
        self.log = log
        self.work = work
        self.made: list[int] = []

    def make_device(self, index: int) -> _Dev:
        self.made.append(index)
        return _Dev(index)

    async def iterate(self, dev: _Dev, scheduled: float) -> None:
        self.log.append((round(scheduled - self.start_at, 6), dev.index, dev.seq))
        dev.seq += 1
        await asyncio.sleep(self.work)

    def start(self, dev: _Dev, scheduled: float, finished: Callable[[], None]) -> None:
        task = asyncio.get_running_loop().create_task(self.iterate(dev, scheduled))
        task.add_done_callback(lambda _t: finished())

    async def abandon(self) -> None:
        pass


def _drive(ex: Any, work: float) -> tuple[list[tuple[float, int, int]], list[int], int]:
    log: list[tuple[float, int, int]] = []

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5
        beh = _Behaviour(start, log, work)
        ev = _Events()
        await ex.drive(Drive(start, beh, ev, asyncio.Event(), 1.0))  # type: ignore[arg-type]
        return beh.made, ev.dropped_n

    made, dropped = run_virtual(main())
    return log, made, dropped


@pytest.mark.parametrize("kind", ["constant-arrival-rate", "per-vu-iterations", "ramping-vus"])
def test_driven_segments_run_the_whole_schedule_on_global_devices(kind: str) -> None:
    ex = EXECUTORS[kind]
    # arrival-rate: iterations shorter than a device's turn, so nothing drops either way
    work = 0.05 if ex.pre_allocated() is not None else 0.3
    whole_log, whole_made, whole_dropped = _drive(ex, work)
    logs, made = [], []
    for seg in _segs(3):
        log, m, dropped = _drive(ex.for_segment(seg), work)
        assert dropped == 0
        logs.append(log)
        made.append(set(m))
    assert whole_dropped == 0
    # devices: each made by one segment, all of them together the one-process run's
    assert not (made[0] & made[1]) and not (made[1] & made[2]) and not (made[0] & made[2])
    assert made[0] | made[1] | made[2] == set(whole_made)
    union = [e for log in logs for e in log]
    if ex.pre_allocated() is not None:
        # open model: the same start times; (device, sequence) never repeats
        assert sorted(t for t, _, _ in union) == sorted(t for t, _, _ in whole_log)
        assert len({(d, s) for _, d, s in union}) == len(union)
    else:
        # closed model: every device runs the same iterations it runs in one process
        assert Counter((d, s) for _, d, s in union) == Counter((d, s) for _, d, s in whole_log)


@pytest.mark.parametrize("kind", sorted(EXECUTORS))
def test_a_segment_is_an_open_model_as_its_whole_is(kind: str) -> None:
    """A segment's spec stands for the scenario's executor in a worker (segment_config), so it
    answers ``open_model`` as the whole does. Before: an arrival segment had no such attribute
    (AttributeError), while a VU segment answered through ClosedModel."""
    whole = EXECUTORS[kind]
    for k in range(3):
        seg = whole.for_segment(SegmentSequence.even(3).segment(k))
        assert seg.open_model is whole.open_model is (whole.pre_allocated() is not None)
