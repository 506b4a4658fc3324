"""A verdict's reason must be the true one: the bottleneck hint and the warning name the
generator criterion that fired, with its figure, and drops by an exhausted device pool
(every device busy at ``max_devices``) are a configuration limit, not a saturated generator."""

from __future__ import annotations

from typing import Any

from simulator.report.html import _verdict
from simulator.report.stages import StageRow, assess, bottleneck, render_text, to_json

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
