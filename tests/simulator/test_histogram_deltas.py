"""One delta mechanism for histograms (issue 12, `auto` CPU per request): a worker's per-tick
snapshot carries each trend's buckets as two packed arrays, not one Python object per bucket
(before: ~5,000 buckets per worker per second were pickled as dict items, and the coordinator
spent ~0.9 ms unpickling and ~1.3 ms merging them each second); the run stream's tick line
and the worker's snapshot take their deltas the same way, and merged results stay exact."""

from __future__ import annotations

import pathlib
import pickle
import pickletools

import numpy as np
import pytest

from simulator.metrics import Histogram, Registry, fold_columns
from simulator.metrics.histogram import bucket_bounds
from simulator.metrics.registry import Trend
from simulator.run.workers import DeltaTracker, SeriesDelta

TAGS = (("scenario", "s"),)


def _tick(reg: Registry, rng: np.random.Generator, n: int) -> None:
    """``n`` requests' worth of durations (lognormal µs, ~thousands of distinct buckets)."""
    trend = reg.get("http_req_duration", TAGS)
    assert isinstance(trend, Trend)
    fold_columns([trend.hist], rng.lognormal(9, 1.2, size=(n, 1)).astype(np.int64))
    trend.add_us(int(rng.integers(0, 10_000)))  # and a single record (a Python device's)


def _opcodes(data: bytes) -> int:
    return sum(1 for _ in pickletools.genops(data))


def test_a_snapshot_carries_its_buckets_as_packed_arrays() -> None:
    """A tick of 5,000 distinct buckets pickles to a constant number of pickle opcodes (each
    opcode is an object the coordinator builds) and at most 6 bytes per bucket. Before:
    two opcodes per bucket (~10,000), all unpickled into ints and a dict."""
    reg = Registry()
    tracker = DeltaTracker(reg)
    trend = reg.get("http_req_duration", TAGS)
    values = np.array([[bucket_bounds(i)[0]] for i in range(1_000, 6_000)], dtype=np.int64)
    fold_columns([trend.hist], values)
    for _ in range(2):  # the first snapshot and a later one
        (delta,) = tracker.take()
        assert isinstance(delta.value, Trend)
        buckets = len(delta.value.hist.counts)
        data = pickle.dumps(delta, protocol=pickle.HIGHEST_PROTOCOL)
        assert buckets == 5_000
        assert _opcodes(data) < 100, _opcodes(data)
        assert len(data) <= 6 * buckets + 1_000, len(data)
        fold_columns([trend.hist], values)


def _merge(into: Registry, deltas: tuple[SeriesDelta, ...]) -> None:
    for d in deltas:
        into.get(d.metric, d.tags).merge(d.value)


def test_two_workers_encoded_deltas_merge_to_the_histograms_merge() -> None:
    """Two workers, five ticks: their pickled deltas merged tick by tick give exactly the
    histogram of every value (buckets in the same order, count, total, min and max), and the
    coordinator's run-stream deltas of the merged registry add up to it too."""
    rng = np.random.default_rng(12)
    workers = [Registry(), Registry()]
    trackers = [DeltaTracker(r) for r in workers]
    merged = Registry()
    streamed = Histogram()
    whole = Histogram()
    for tick in range(5):
        for reg, tracker in zip(workers, trackers, strict=True):
            _tick(reg, rng, 500 * (tick + 1))
            deltas = tracker.take()
            for d in deltas:  # the whole run, as one histogram would have it
                assert isinstance(d.value, Trend)
                whole.merge(pickle.loads(pickle.dumps(d.value.hist)))
            _merge(merged, pickle.loads(pickle.dumps(deltas)))
        got = merged.get("http_req_duration", TAGS)
        streamed.merge(got.hist.take_fresh())  # the run stream's tick line
    got = merged.get("http_req_duration", TAGS).hist
    for h in (got, streamed):
        assert list(h.counts.items()) == list(whole.counts.items())
        assert (h.count, h.total, h.min, h.max) == (whole.count, whole.total, whole.min, whole.max)
    assert whole.count == 2 * 500 * 15 + 10
    for reg in workers:  # a worker keeps nothing once its ticks are sent
        w = reg.get("http_req_duration", TAGS).hist
        assert (w.count, w.counts) == (0, {})


def test_fresh_buckets_keep_the_order_they_were_first_touched() -> None:
    """The run stream writes a tick's buckets in the order they were first touched (the
    stream stays byte-identical), whatever mixes of records, folds and merges made them."""
    h = Histogram()
    h.take_fresh()
    h.record(5)
    fold_columns([h], np.array([[9], [1], [5], [9]], dtype=np.int64))
    h.record(3)
    h.record(1)
    other = Histogram()
    for v in (7, 2, 7):
        other.record(v)
    h.merge(pickle.loads(pickle.dumps(other)))
    h.merge(other)
    fresh = h.take_fresh()
    assert list(fresh.counts.items()) == [(5, 2), (1, 2), (9, 2), (3, 1), (7, 4), (2, 2)]
    assert (fresh.count, fresh.total, fresh.min, fresh.max) == (13, 65, 1, 9)
    assert list(h.counts) == [5, 1, 9, 3, 7, 2]
    assert h.take_fresh().counts == {}


def test_a_deltas_percentiles_equal_those_of_its_buckets_read_into_a_dict() -> None:
    """A delta (buckets still as arrays: an interval's histogram at the tick, a worker's
    schedule lag) answers percentiles without building a dict, with the same values."""
    rng = np.random.default_rng(3)
    for n in (1, 2, 17, 3000):
        h = Histogram()
        h.take_fresh(keep=False)
        fold_columns([h], rng.lognormal(8, 1.5, size=(n, 1)).astype(np.int64))
        h.record(int(rng.integers(0, 100)))
        delta = h.take_fresh(keep=False)
        same = pickle.loads(pickle.dumps(delta))
        same.counts  # noqa: B018 - read into the dict: the percentiles walk it
        for pct in (0, 0.1, 1, 25, 50, 90, 95, 99, 99.9, 100):
            assert delta.percentile(pct) == same.percentile(pct), (n, pct)
        assert delta.count == n + 1 and h.count == 0


def test_an_intervals_take_hands_over_its_histogram_and_keeps_collecting() -> None:
    from simulator.metrics import IntervalStats

    iv = IntervalStats()
    fold_columns([iv.hist], np.array([[5], [7000]], dtype=np.int64))
    first = iv.take()
    fold_columns([iv.hist], np.array([[9]], dtype=np.int64))
    second = iv.take()
    assert (first.hist.counts, first.hist.count, first.hist.max) == ({5: 1, 3798: 1}, 2, 7000)
    assert (second.hist.counts, second.hist.count, second.hist.min) == ({9: 1}, 1, 9)
    assert iv.hist.count == 0


def test_a_prepared_coordinator_unpickles_a_snapshot_without_importing(
    tmp_path: pathlib.Path,
) -> None:
    """Before: the coordinator (which records no requests) imported numpy at the first
    snapshot's histograms, mid-run: ~0.5 s on its loop on a busy machine, and the workers'
    first ticks missed their point (test_a_worker_dropping_its_iterations_is_named_in_the_
    warning then failed with KeyError 'gen.dropped_share')."""
    import subprocess
    import sys

    reg = Registry()
    tracker = DeltaTracker(reg)
    _tick(reg, np.random.default_rng(1), 100)
    (tmp_path / "snap.pickle").write_bytes(pickle.dumps(tracker.take()))
    code = (
        "import pickle, sys\n"
        "from simulator.run.workers import warm_imports\n"
        "warm_imports()\n"
        "before = set(sys.modules)\n"
        f"deltas = pickle.loads(open({str(tmp_path / 'snap.pickle')!r}, 'rb').read())\n"
        "deltas[0].value.hist.percentile(99)\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_the_coordinators_merge_and_tick_line_read_no_bucket_into_a_dict(
    tmp_path: pathlib.Path,
) -> None:
    """Coordinator CPU per tick (issue 12): merging workers' deltas and writing the run
    stream's tick line work on the bucket arrays. Before: every merged bucket was written into
    the registry's dict (~3 ms a tick at 2 x 2,000/s) and every fresh bucket read into a dict
    to be encoded (~11 ms). The line is byte for byte what encoding the dicts gives, and the
    totals read at the end are the histograms' merge."""
    import json

    from simulator.report.output import RunStream, _dumps, encoded_tick

    rng = np.random.default_rng(5)
    workers = [Registry(), Registry()]
    trackers = [DeltaTracker(r) for r in workers]
    merged, whole = Registry(), Histogram()
    stream = RunStream(tmp_path, {})
    for tick in range(4):
        for reg, tracker in zip(workers, trackers, strict=True):
            _tick(reg, rng, 700 * (tick + 1))
            deltas = pickle.loads(pickle.dumps(tracker.take()))
            _merge(merged, deltas)
            for d in deltas:
                whole.merge(d.value.hist)
        line = {"type": "tick", "wall": 1.0, "point": {}, "registry": stream._delta(merged)}
        text = encoded_tick(line)
        hist = merged.get("http_req_duration", TAGS).hist
        assert hist._counts == {}, "a bucket was read into the dict"
        for item in line["registry"]["series"]:
            fresh = item["hist"]["counts"]
            assert fresh._counts == {}
            item["hist"]["counts"] = fresh.counts  # as the line was encoded before
        assert text == _dumps(line)
        assert json.loads(text)["registry"]["series"][0]["hist"]["count"] > 0
    assert hist.percentile(99) == whole.percentile(99) and hist._counts == {}
    assert list(hist.counts.items()) == list(whole.counts.items())
    stream.close()


def test_a_tick_lines_counts_from_arrays_are_the_dicts_json() -> None:
    """Folds, single records, merges, a count beyond the small-count table and keys beyond
    the key table's first size: the text written from the arrays is json.dumps of the dict."""
    import json

    from simulator.report.output import _counts_text

    rng = np.random.default_rng(9)
    for _ in range(60):
        h = Histogram()
        h.take_fresh()
        for _ in range(int(rng.integers(0, 4))):
            n = int(rng.integers(1, 3000))
            fold_columns([h], rng.lognormal(rng.uniform(1, 14), 1.5, (n, 1)).astype(np.int64))
            h.record(int(rng.integers(0, 10**9)))
            other = Histogram()
            fold_columns([other], rng.integers(0, 10**6, (int(rng.integers(1, 900)), 1)))
            h.merge(pickle.loads(pickle.dumps(other)))
        if rng.random() < 0.3:
            fold_columns([h], np.full((5000, 1), 7, dtype=np.int64))
        fresh = h.take_fresh()
        text = _counts_text(fresh)
        assert text == json.dumps(fresh.counts, separators=(",", ":"))


def test_the_coordinators_totals_never_sort_the_run_so_far(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers' deltas merged for 100 ticks, a tick line taken each: no step sorts more
    than a tick's chunks. Before: the merged chunks were compacted (one sort of ~100,000
    entries) every 32 ticks, ~5 ms per series, all series on the same tick (39 ms,
    bench_snapshot.py --ticks 100). Percentiles of the totals are those of their dict."""
    from simulator.metrics import histogram

    sizes: list[int] = []
    real = histogram._compact

    def compact(chunks: list[histogram.Chunk]) -> histogram.Chunk:
        sizes.append(len(chunks))
        return real(chunks)

    monkeypatch.setattr(histogram, "_compact", compact)
    rng = np.random.default_rng(8)
    coord = Histogram()
    coord.take_fresh()
    whole: dict[int, int] = {}
    for _ in range(100):
        for _ in range(2):
            worker = Histogram()
            fold_columns([worker], rng.lognormal(9, 1.2, (300, 1)).astype(np.int64))
            delta = pickle.loads(pickle.dumps(worker.take_fresh(keep=False)))
            for k, n in delta.counts.items():
                whole[k] = whole.get(k, 0) + n
            coord.merge(delta)
        coord.take_fresh().bucket_arrays()  # the tick line
    assert max(sizes) <= 2, max(sizes)
    ref = Histogram.from_dict(
        {"counts": whole, "count": coord.count, "total": 0, "min": 0, "max": coord.max}
    )
    ref.min = coord.min
    for pct in (1, 50, 90, 99, 99.9):
        assert coord.percentile(pct) == ref.percentile(pct), pct
    assert coord.counts == whole and list(coord.counts) == list(whole)


def _worker_ticks(compact: bool) -> tuple[list[bytes], Registry]:
    """Two workers' pickled snapshots over five ticks (several folds and single records a
    tick) and the coordinator's registry they merge into; ``compact``: each delta's
    histogram compacted first, as the worker's tick does one per loop turn."""
    rng = np.random.default_rng(7)
    workers = [Registry(), Registry()]
    trackers = [DeltaTracker(r) for r in workers]
    merged = Registry()
    sent: list[bytes] = []
    for tick in range(5):
        for reg, tracker in zip(workers, trackers, strict=True):
            for _fold in range(3):  # three folds a tick: three chunks in the delta
                _tick(reg, rng, 300 * (tick + 1))
            deltas = tracker.take()
            if compact:
                for d in deltas:
                    assert isinstance(d.value, Trend)
                    d.value.hist.compact()
            sent.append(pickle.dumps(deltas))
            _merge(merged, pickle.loads(sent[-1]))
    return sent, merged


def test_a_compacted_snapshot_pickles_to_the_same_bytes_and_merges_the_same() -> None:
    """The worker compacts its snapshot's histograms a loop turn each before the send (whose
    one pickle-and-send callback took 0.5-1.6 ms): the coordinator gets the same bytes, so
    the same merged result."""
    before, merged_before = _worker_ticks(compact=False)
    after, merged_after = _worker_ticks(compact=True)
    assert after == before
    a = merged_after.get("http_req_duration", TAGS).hist
    b = merged_before.get("http_req_duration", TAGS).hist
    assert pickle.dumps(a) == pickle.dumps(b) and list(a.counts.items()) == list(b.counts.items())


def test_a_compacted_histogram_pickles_without_reducing_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The work left in the send is packing: no chunk is reduced (sorted) there any more."""
    import simulator.metrics.histogram as histogram

    reg = Registry()
    tracker = DeltaTracker(reg)
    rng = np.random.default_rng(3)
    for _fold in range(3):
        _tick(reg, rng, 2_000)
    (delta,) = tracker.take()
    assert isinstance(delta.value, Trend)
    expected = pickle.dumps(delta)
    delta.value.hist.compact()

    def no_reduce(*_a: object) -> None:
        raise AssertionError("the send reduced chunks")

    monkeypatch.setattr(histogram, "_reduce", no_reduce)
    assert pickle.dumps(delta) == expected
