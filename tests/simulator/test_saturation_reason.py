"""A verdict's reason must be the true one: the bottleneck hint and the warning name the
generator criterion that fired, with its figure, and drops by an exhausted device pool
(every device busy at ``max_devices``) are a configuration limit, not a saturated generator."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from answering import answering

from scfleet import api
from simulator.metrics import IntervalStats
from simulator.report.html import _verdict
from simulator.report.stages import StageRow, assess, bottleneck, render_text, to_json
from simulator.run.workers import GenFigures, ScenarioTick, Snapshot, WorkerPool, schedule_figures

WORKER = "worker 2 of 2 (segment 1/2:1)"


def _row(index: int, **kw: Any) -> StageRow:
    rate = (index + 1) * 10.0
    r = StageRow("s", index, f"{rate:g} iters/s", "iters/s", index * 3.0, index * 3.0 + 3, rate)
    r.seconds, r.requests, r.iterations, r.achieved_rps = 3.0, 30, 30, 10.0
    r.p50_ms, r.p95_ms, r.p99_ms = 4.0, 9.0, 12.0
    r.thresholds_ok = True
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_the_hint_and_warning_name_the_criterion_that_fired() -> None:
    """Seen on the README's main job under machine load: "bottleneck: generator saturated
    (CPU 3%, loop lag 2.0 ms, worker 2 of 2 (segment 1/2:1))": neither figure shown is
    saturated; the start lag p99 that fired was not named."""
    first = _row(0)
    late = _row(1, gen_cpu=3.0, gen_lag_ms=2.0, gen_start_lag_ms=303.0, gen_worker=WORKER)
    kind, hint = bottleneck(late, first)
    assert kind == "generator"
    assert hint.startswith(
        f"generator saturated (start lag p99 303 ms ≥ 5 ms; CPU 3%, loop lag 2.0 ms; {WORKER})"
    ), hint
    a = assess([first, late])
    assert a.generator_warning and a.generator_reason == "start lag p99 303 ms ≥ 5 ms at 20 iters/s"
    text = render_text([first, late], [a])
    assert (
        f"warning: the generator was saturated in some stage ({WORKER}): "
        "start lag p99 303 ms ≥ 5 ms at 20 iters/s;" in text
    ), text
    assert "start lag p99 303 ms ≥ 5 ms at 20 iters/s" in _verdict(a)
    assert to_json([first, late], [a])["scenarios"]["s"]["generator_reason"] == a.generator_reason
    assert "\n" not in hint


def test_every_criterion_that_fired_is_named() -> None:
    first = _row(0)
    both = _row(1, gen_cpu=93.0, gen_lag_ms=7.5, gen_dropped_share=0.04)
    hint = bottleneck(both, first)[1]
    assert "(CPU 93% ≥ 85%, loop lag 7.5 ms ≥ 5 ms, dropped 4.0% ≥ 1%)" in hint, hint
    one_process = _row(1, gen_cpu=97.0)
    assert "generator saturated (CPU 97% ≥ 85%)" in bottleneck(one_process, first)[1]


@pytest.mark.slow
def test_drops_by_an_exhausted_pool_are_named_as_a_configuration_limit(tmp_path: Path) -> None:
    """10 arrivals/s for 2 s over at most 2 devices against a server answering after 0.5 s:
    the pool serves 4/s and every other arrival finds every device busy. That is k6's
    "Insufficient VUs" (raise max_devices), not a saturated generator: the stage table counts
    those drops apart and the hint says so (before: "no resource saturated ... look at worker
    pools", or "generator saturated" with workers)."""
    (tmp_path / "s.toml").write_text(
        """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 10
duration = "2s"
pre_allocated_devices = 2
max_devices = 2
graceful_stop = "2s"
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 100
"""
    )
    with answering(200, 0.5) as url:
        out = api.run(api.load(tmp_path / "s.toml"), target=url, out=tmp_path / "r", workers=1)
    stages = json.loads(out.files["summary.json"].read_text())["scfleet"]["stages"]
    rows = stages["rows"]
    dropped = sum(r["dropped"] for r in rows)
    assert dropped >= 8, rows  # 20 planned, at most ~10 served
    assert sum(r["pool_full"] for r in rows) == dropped, rows
    a = stages["scenarios"]["up"]
    assert a["bottleneck"] == "device_pool", a
    assert a["hint"].startswith("device pool exhausted at 10 iters/s: max_devices reached"), a
    assert "raise max_devices" in a["hint"] and not a["generator_warning"], a
    assert "device pool exhausted" in out.files["summary.txt"].read_text()
    assert "device pool exhausted" in out.files["report.html"].read_text()


def test_a_worker_whose_pool_is_exhausted_is_not_a_saturated_generator() -> None:
    """With workers, a worker's drops made its dropped share and so "generator saturated",
    whatever their cause. Drops by an exhausted pool are counted apart (merged as the other
    counts are, so 1 and N workers give the same shape) and are not the generator's."""
    stats = IntervalStats(requests=4, iterations=4, dropped=6, pool_full=6)
    scenarios = (ScenarioTick("s", stats, 1, 2, 2),)
    figures = schedule_figures(GenFigures(20.0, None, 0.3, 0.5), scenarios, ())
    assert figures.dropped_share == 0.0 and figures.pressure < 1, figures
    late = IntervalStats(requests=4, iterations=4, dropped=6, pool_full=2)
    figures = schedule_figures(
        GenFigures(20.0, None, 0.3, 0.5), (ScenarioTick("s", late, 1, 2, 2),), ()
    )
    assert figures.dropped_share == 0.4, figures
    pool = WorkerPool(cast(Any, None), "http://127.0.0.1:9", {}, 2)
    live = IntervalStats()
    ev = SimpleNamespace(active=lambda n: None, peak=0, allocated=0)
    pool._env = cast(Any, SimpleNamespace(intervals={"s": live}, events={"s": ev}))
    pool._merge_tick(Snapshot(0, 1, scenarios, ()))
    pool._merge_tick(Snapshot(1, 1, (ScenarioTick("s", late, 1, 2, 2),), ()))
    assert (live.dropped, live.pool_full) == (12, 8)
