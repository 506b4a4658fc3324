"""Thresholds on a metric with no samples are judged as k6 1.1 judges them.

At the end of a run k6 evaluates every threshold, an empty sink included: an empty trend's
stats and an empty gauge's value are 0 (so ``avg>50`` fails, ``p(95)<2000`` passes), an empty
counter's count is 0, and an empty rate has no value (the threshold is skipped). While the
run goes it skips empty sinks, so ``abort_on_fail`` never fires on a metric with no sample yet.

Found against a loopback server answering every upload with 500: a Python device's
``my_batch_bytes = ["avg>50"]`` and ``my_level = ["value>1"]`` (added on success only) printed
✓ "observed no samples" and the run exited 0, where k6 1.1 fails both (avg=0, value=0, exit
99). And ``http_reqs = [{threshold = "count>0", abort_on_fail = true}]`` against a server
answering after 1.5 s aborted the run at its first second with 0 requests (exit 99), where
k6 1.1 ran it whole and passed (count=16, exit 0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from answering import answering, run_empty_on_failure

from scfleet import api
from simulator.metrics import Registry
from simulator.metrics.thresholds import (
    MetricSource,
    Threshold,
    evaluate_one,
    parse_expression,
    parse_metric_key,
)


class _Source(MetricSource):
    def __init__(self, reg: Registry) -> None:
        self.reg = reg

    def metric_type(self, name: str) -> str | None:
        return self.reg.metric_type(name)

    def aggregate(self, name: str, tags: dict[str, str], aggregation: str) -> float | None:  # type: ignore[override]
        return self.reg.aggregate(name, tags, aggregation, 1.0)


def _th(key: str, expr: str) -> Threshold:
    name, tags = parse_metric_key(key)
    return Threshold(key, name, tags, parse_expression(expr))


@pytest.mark.parametrize(
    ("key", "expr", "ok"),
    [
        ("t", "avg>50", False),
        ("t", "p(95)<2000", True),
        ("t", "min>=0", True),
        ("t", "max>0", False),
        ("g", "value>1", False),
        ("g", "value<1", True),
        ("c", "count>0", False),
        ("c", "count<1", True),
        ("r", "rate>0.5", True),
        ("r", "rate<0.5", True),
    ],
)
def test_an_empty_sink_is_judged_as_k6_does(key: str, expr: str, ok: bool) -> None:
    reg = Registry()
    for name, kind in (("t", "trend"), ("g", "gauge"), ("c", "counter"), ("r", "rate")):
        reg.define(name, kind)
    res = evaluate_one(_th(key, expr), _Source(reg))
    assert res.ok is ok, res


@pytest.mark.slow
def test_a_custom_trend_left_empty_fails_its_lower_bound(tmp_path: Path) -> None:
    out = run_empty_on_failure(
        tmp_path,
        """my_batch_bytes = ["avg>50", "p(95)<2000"]
my_level = ["value>1"]
""",
    )
    got = {(r.threshold.metric, r.threshold.expr.source): r.ok for r in out.result.thresholds}
    assert got == {
        ("my_batch_bytes", "avg>50"): False,
        ("my_batch_bytes", "p(95)<2000"): True,
        ("my_level", "value>1"): False,
    }, got
    assert out.exit_code == 99


@pytest.mark.slow
def test_abort_on_fail_waits_for_the_first_sample(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 5
duration = "3s"
pre_allocated_devices = 10
[thresholds]
http_reqs = [{ threshold = "count>0", abort_on_fail = true }]
"""
    )
    with answering(200, 1.5) as url:
        out = api.run(api.load(tmp_path / "s.toml"), target=url, out=tmp_path / "r", workers=1)
    assert out.result.aborted is None, out.result.aborted
    assert out.exit_code == 0
