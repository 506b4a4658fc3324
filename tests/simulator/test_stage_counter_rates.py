"""A counter's ``rate`` threshold is a run total: count / the whole run's seconds, as k6 takes it
(``Thresholds.Run``: a CounterSink's rate is its value over the time spent in the test). The
stage table judged it on each stage's own rate, so a ramp that met ``http_reqs rate>10`` read
"knee: below 5 iters/s" (the quiet first stage's 5/s), and one that met ``rate<15`` failed its
busy stage (20/s) — verdicts the run's own threshold contradicted.

Now, as counts are: an upper bound is judged on the scenario's running total over the run's
duration (where the run's rate is already broken, the stage fails), a lower bound not per stage.
"""

from __future__ import annotations

from stage_ticks import tick as _tick

from simulator.executors import StageWindow
from simulator.report.stages import StageRecorder, stage_table

WINDOWS = {
    "s": [
        StageWindow("s", 0, 0.0, 2.0, 5, 5, "iters/s"),
        StageWindow("s", 1, 2.0, 4.0, 20, 20, "iters/s"),
    ]
}


# 5/s for 2 s, then 20/s for 2 s: 50 requests in a 4 s run, the run's rate 12.5/s
TIMELINE = [_tick(1, 5), _tick(2, 5), _tick(3, 20), _tick(4, 20)]


def _judge(expr: str, duration: float | None = 4.0) -> tuple[list[bool], str]:
    rows, (a,) = stage_table(StageRecorder(WINDOWS), TIMELINE, [("http_reqs", expr)], duration)
    return [r.thresholds_ok for r in rows], a.verdict


def test_a_lower_bound_the_run_met_fails_no_stage() -> None:
    assert _judge("rate>10") == ([True, True], "held")  # before: ([False, True], 'graceful')


def test_an_upper_bound_the_run_met_fails_no_stage() -> None:
    assert _judge("rate<15") == ([True, True], "held")  # before: ([True, False], 'graceful')


def test_an_upper_bound_the_run_broke_fails_the_stage_where_the_total_crossed_it() -> None:
    rows, _ = stage_table(StageRecorder(WINDOWS), TIMELINE, [("http_reqs", "rate<12")], 4.0)
    assert [r.thresholds_ok for r in rows] == [True, False]
    assert "(stage: 12.5)" in rows[1].failed_thresholds[0]


def test_without_the_runs_length_a_rate_is_not_judged_per_stage() -> None:
    """A live page does not know the run's length yet: no verdict from a rate bound."""
    assert _judge("rate<12", None) == ([True, True], "held")
