"""Threshold expressions and the HDR-style histograms behind trend metrics."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from simulator.metrics import Histogram, Registry, bucket_bounds, bucket_index
from simulator.metrics.thresholds import (
    Threshold,
    evaluate_one,
    parse_expression,
    parse_metric_key,
)


@pytest.mark.parametrize(
    ("text", "agg", "op", "value"),
    [
        ("p(95)<2000", "p(95)", "<", 2000),
        ("rate<0.01", "rate", "<", 0.01),
        ("count>0", "count", ">", 0),
        ("avg <= 1.5", "avg", "<=", 1.5),
        ("p(99.9)<10", "p(99.9)", "<", 10),
        ("med===3", "med", "===", 3),
        ("max!=0", "max", "!=", 0),
    ],
)
def test_parse_expression(text: str, agg: str, op: str, value: float) -> None:
    e = parse_expression(text)
    assert (e.aggregation, e.op, e.value) == (agg, op, value)


@pytest.mark.parametrize("text", ["p95<1", "p(101)<1", "rate<<1", "avg", "sum<3", "rate<x"])
def test_bad_expressions(text: str) -> None:
    with pytest.raises(ValueError):
        parse_expression(text)


def test_metric_key_with_tags() -> None:
    assert parse_metric_key("http_req_duration{scenario:a, kind:virtual}") == (
        "http_req_duration",
        (("kind", "virtual"), ("scenario", "a")),
    )
    with pytest.raises(ValueError):
        parse_metric_key("http_req_duration{scenario}")


def _threshold(key: str, expr: str) -> Threshold:
    metric, tags = parse_metric_key(key)
    return Threshold(key, metric, tags, parse_expression(expr))


def test_evaluation_with_tag_filters() -> None:
    reg = Registry()
    for v in range(1, 101):  # scenario a: 1..100 ms
        reg.get("http_req_duration", {"scenario": "a", "status": "200"}).add_us(v * 1000)
    for _ in range(100):  # scenario b: all 5 s
        reg.get("http_req_duration", {"scenario": "b", "status": "200"}).add_us(5_000_000)
    fails = reg.get("http_req_failed", {"scenario": "a"})
    for i in range(200):
        fails.add(i < 3)

    class Src:
        metric_type = staticmethod(reg.metric_type)

        @staticmethod
        def aggregate(name: str, tags: dict[str, str], agg: str) -> float | None:
            return reg.aggregate(name, tags, agg, 10.0)

    ok_a = evaluate_one(_threshold("http_req_duration{scenario:a}", "p(95)<2000"), Src())
    assert ok_a.ok and ok_a.observed == pytest.approx(95, rel=0.01)
    all_ = evaluate_one(_threshold("http_req_duration", "p(95)<2000"), Src())
    assert not all_.ok and all_.observed == pytest.approx(5000, rel=0.01)
    rate = evaluate_one(_threshold("http_req_failed", "rate<0.01"), Src())
    assert not rate.ok and rate.observed == pytest.approx(0.015)
    zero = evaluate_one(_threshold("http_reqs", "count>0"), Src())
    assert not zero.ok and zero.observed == 0
    wrong = evaluate_one(_threshold("http_req_failed", "p(95)<1"), Src())
    assert not wrong.ok and "not defined" in wrong.note


def test_bucket_layout_is_continuous_and_tight() -> None:
    prev = -1
    for v in [0, 1, 2047, 2048, 2049, 4095, 4096, 10**6, 10**9, 3 * 10**10]:
        idx = bucket_index(v)
        lo, hi = bucket_bounds(idx)
        assert lo <= v <= hi
        assert (hi - lo) <= max(1, v) / 1000
        assert idx >= prev
        prev = idx


def test_percentiles_match_numpy_within_hdr_precision() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(9, 1.2)) for _ in range(50_000)]
    h = Histogram()
    for v in values:
        h.record(v)
    arr = np.array(values)
    for p in (50, 90, 95, 99, 99.9):
        exact = float(np.percentile(arr, p, method="inverted_cdf"))
        assert h.percentile(p) == pytest.approx(exact, rel=2e-3)
    assert h.min == arr.min() and h.max == arr.max() and h.count == len(values)
    assert h.mean == pytest.approx(arr.mean())
    assert len(h.counts) < 10_000  # bounded, not one slot per sample


def test_merge_equals_recording_everything_and_roundtrips() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    rng = random.Random(1)
    for i in range(5000):
        v = rng.randrange(1, 10**7)
        (a if i % 2 else b).record(v)
        both.record(v)
    a.merge(b)
    assert a.counts == both.counts and a.total == both.total
    assert (a.min, a.max) == (both.min, both.max)
    reg = Registry()
    reg.get("http_req_duration", {"scenario": "x"}).hist = a
    reg.get("http_reqs", {"scenario": "x"}).add(3)
    back = Registry.from_dict(reg.to_dict())
    assert back.aggregate("http_req_duration", {}, "p(99)") == reg.aggregate(
        "http_req_duration", {}, "p(99)"
    )
    merged = Registry()
    merged.merge(back)
    merged.merge(back)
    assert merged.aggregate("http_reqs", {}, "count") == 6


def test_bulk_fold_equals_one_by_one() -> None:
    """The recorder's vectorized fold must bucket exactly like Histogram.record."""
    from simulator.metrics import IntervalStats, RequestRecorder, RequestSample

    rng = random.Random(3)
    rows = [
        (
            rng.choice([200, 200, 200, 500, 0]),
            0,
            rng.randrange(0, 5 * 10**7),
            rng.randrange(0, 3000),
            rng.randrange(0, 100),
            rng.randrange(0, 10**6),
            rng.randrange(0, 10**4),
            rng.randrange(0, 10**8),
            32100,
            120,
        )
        for _ in range(3000)
    ]
    results = []
    for chunk in (len(rows), 10):  # vectorized path, and the small-batch loop
        reg = Registry()
        iv = IntervalStats()
        rec = RequestRecorder(reg, (("scenario", "s"),), iv, (("scenario", "s"),))
        for i in range(0, len(rows), chunk):
            for r in rows[i : i + chunk]:
                rec.record(RequestSample(r[0], r[0] != 200, *r[2:]))
            reg.flush()
        d = reg.to_dict()
        series = sorted(json.dumps(x, sort_keys=True) for x in d["series"])
        results.append((d, series, iv.requests, iv.failed, iv.hist.counts))
    assert results[0][1:] == results[1][1:]
    reg = Registry.from_dict(results[0][0])
    assert reg.aggregate("http_reqs", {}, "count") == 3000
    names = (
        "http_req_duration",
        "http_req_connecting",
        "http_req_sending",
        "http_req_waiting",
        "http_req_receiving",
        "http_req_corrected_duration",
    )
    for col, name in enumerate(names, start=2):
        for status in ("200", "500", "0"):
            h = Histogram()
            for r in rows:
                if str(r[0]) == status:
                    h.record(r[col])
            got = reg.merged(name, {"status": status}).hist  # type: ignore[union-attr]
            assert (got.counts, got.count, got.total, got.min, got.max) == (
                h.counts,
                h.count,
                h.total,
                h.min,
                h.max,
            ), (name, status)


def test_a_typed_series_is_the_metric_of_that_type_or_an_error_naming_both() -> None:
    from simulator.metrics import Counter, Gauge, Registry

    reg = Registry()
    c = reg.typed(Counter, "iterations", (("scenario", "s"),))
    c.value += 2
    assert reg.get("iterations", {"scenario": "s"}) is c
    with pytest.raises(TypeError, match="'vus' is a Gauge, not a Counter"):
        reg.typed(Counter, "vus")
    assert isinstance(reg.typed(Gauge, "vus"), Gauge)
