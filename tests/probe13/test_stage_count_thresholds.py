"""Count thresholds are run totals: the stage table must not judge a stage on its share of one.

Found by running ``configs/smoke.toml`` with ``http_reqs = ["count>200"]``: every threshold
passed (230 requests, exit 0), yet each stage (80, 30 and 120 requests) failed ``count>200``
and the table read "knee: below 20 iters/s", "verdict: graceful — thresholds failed".
"""

from __future__ import annotations

from typing import Any

from stage_ticks import tick

from simulator.executors import StageWindow
from simulator.report.stages import StageRecorder, stage_table

WINDOWS = {
    "s": [
        StageWindow("s", 0, 0.0, 2.0, 5, 5, "iters/s"),
        StageWindow("s", 1, 2.0, 4.0, 5, 10, "iters/s"),
    ]
}


def _tick(t: float, requests: int, dropped: int = 0) -> dict[str, Any]:
    return tick(t, requests, dropped=dropped)


TIMELINE = [_tick(1, 10, 5), _tick(2, 10, 5), _tick(3, 10, 5), _tick(4, 10, 5)]  # 40 requests


def test_a_lower_bound_on_a_run_total_does_not_fail_the_stages_of_a_run_that_met_it() -> None:
    """40 requests in all meet ``count>30``; each stage's 20 does not, and must not judge it.
    Before: both stages failed it, "knee: below 5 iters/s", verdict graceful."""
    rows, (a,) = stage_table(StageRecorder(WINDOWS), TIMELINE, [("http_reqs", "count>30")])
    assert [r.thresholds_ok for r in rows] == [True, True]
    assert a.verdict == "held"


def test_an_upper_bound_on_a_run_total_fails_the_stage_where_the_total_crossed_it() -> None:
    """20 dropped in all break ``count<15``: the run fails (exit 99). Each stage's 10 did not
    break it, so before the table read "held — the limit is higher" beside the failed
    threshold; the running total crosses it in stage 2."""
    ths = [("dropped_iterations{scenario:s}", "count<15")]
    rows, (a,) = stage_table(StageRecorder(WINDOWS), TIMELINE, ths)
    assert [r.thresholds_ok for r in rows] == [True, False]
    assert "(stage: 20)" in rows[1].failed_thresholds[0]
    assert a.verdict == "graceful" and a.knee == 0
