"""The stage table and the knee / verdict / bottleneck rules, on crafted stage tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from stage_ticks import tick

from simulator.executors import StageWindow
from simulator.metrics import Histogram, IntervalStats
from simulator.report.stages import (
    StageRecorder,
    StageRow,
    assess,
    bottleneck,
    build_rows,
    locate,
    render_text,
    stage_table,
    to_json,
)


def row(i: int, target: float, **kw: Any) -> StageRow:
    """A reached, passing hold stage at ``target`` with healthy figures unless overridden."""
    frm = kw.pop("target_from", target)
    base: dict[str, Any] = dict(
        seconds=5.0,
        requests=int(target * 5),
        achieved_rps=target,
        p50_ms=50.0,
        p95_ms=100.0,
        p99_ms=150.0,
        server_alive=1.0,
        server_cpu=30.0,
        server_hottest=30.0,
        server_rss_mb=100.0,
        cpu_count=4.0,
        gen_cpu=10.0,
        gen_lag_ms=0.2,
        thresholds_ok=True,
    )
    base.update(kw)
    label = f"{target:g} iters/s" if frm == target else f"{frm:g}→{target:g} iters/s"
    return StageRow(
        "s", i, label, "iters/s", i * 5.0, i * 5.0 + 5, (frm + target) / 2, frm, target, **base
    )


def test_all_stages_pass_is_held_with_the_knee_at_the_top() -> None:
    a = assess([row(0, 10), row(1, 20), row(2, 40)])
    assert (a.verdict, a.knee, a.knee_label) == ("held", 2, "40 iters/s")
    assert a.bottleneck == "none" and "no bottleneck reached" in a.hint


def test_latency_failure_with_low_errors_and_held_throughput_is_graceful() -> None:
    rows = [
        row(0, 10),
        row(1, 20),
        row(
            2,
            40,
            achieved_rps=31.0,
            p95_ms=2500.0,
            error_rate=0.004,
            thresholds_ok=False,
            server_cpu=390.0,
            server_hottest=99.0,
        ),
    ]
    a = assess(rows)
    assert (a.verdict, a.knee) == ("graceful", 1)
    assert "100 → 2500 ms" in a.reason
    assert a.bottleneck == "server_cpu"


def test_errors_above_ten_percent_are_a_cliff_and_connection_errors_are_named() -> None:
    rows = [
        row(0, 10),
        row(1, 20, requests=100, failed=30, conn_errors=25, error_rate=0.3, thresholds_ok=False),
    ]
    a = assess(rows)
    assert (a.verdict, a.knee) == ("cliff", 0)
    assert "30.0%" in a.reason
    assert a.bottleneck == "connection" and "25 requests" in a.hint


def test_just_under_the_cliff_error_rate_is_still_graceful() -> None:
    rows = [row(0, 10), row(1, 20, requests=100, failed=9, error_rate=0.09, thresholds_ok=False)]
    assert assess(rows).verdict == "graceful"


def test_throughput_collapse_is_a_cliff() -> None:
    rows = [
        row(0, 10),
        row(1, 40, achieved_rps=38.0),
        row(2, 80, achieved_rps=15.0, p95_ms=9000.0, thresholds_ok=False),
    ]
    a = assess(rows)
    assert a.verdict == "cliff" and "38.0 req/s" in a.reason and "15.0 req/s" in a.reason
    # the same fall at a *lower* offered load (a ramp-down) is not a collapse
    down = [row(0, 10), row(1, 40, achieved_rps=38.0), row(2, 5, target_from=40, achieved_rps=15)]
    assert assess(down).verdict == "held"


def test_ramp_down_to_zero_and_short_ramps_are_not_a_collapse() -> None:
    """The seed's VU shape: short ramps between holds, then a ramp to 0 delivering nothing."""
    rows = [
        row(0, 15, target_from=0, seconds=0.6, achieved_rps=15.0),  # 0.6 s ramp: noisy rate
        row(1, 15, achieved_rps=2.7),
        row(2, 50, target_from=15, seconds=0.6, achieved_rps=20.0),
        row(3, 50, achieved_rps=10.5),
        row(4, 0, target_from=50, seconds=0.6, achieved_rps=0.0),
    ]
    assert assess(rows).verdict == "held"
    # a real collapse between long stages still is one
    rows[3] = row(3, 50, achieved_rps=1.0, thresholds_ok=False)
    rows[1] = row(1, 15, achieved_rps=12.0)
    assert assess(rows).verdict == "cliff"


def test_a_dead_server_is_a_crash() -> None:
    rows = [row(0, 10), row(1, 20, server_alive=0.0, thresholds_ok=False, server_cpu=None)]
    a = assess(rows)
    assert a.verdict == "cliff" and "exited" in a.reason
    assert a.bottleneck == "crash"


def test_ramp_down_stages_do_not_lower_the_knee() -> None:
    rows = [row(0, 10), row(1, 20), row(2, 0, target_from=20, achieved_rps=10, thresholds_ok=False)]
    a = assess(rows)
    assert (a.knee, a.verdict) == (1, "held")


def test_first_stage_failing_means_no_knee() -> None:
    a = assess([row(0, 10, thresholds_ok=False), row(1, 20, thresholds_ok=False)])
    assert a.knee is None and a.knee_label == "below 10 iters/s"
    assert a.verdict == "graceful"


def test_unreached_stages_of_an_interrupted_run_are_ignored() -> None:
    late = StageRow("s", 2, "80 iters/s", "iters/s", 10, 15, 80, 80, 80)  # never ticked
    a = assess([row(0, 10), row(1, 40), late])
    assert (a.knee, a.verdict) == (1, "held")
    assert assess([late]).verdict == "no data"


def test_stages_that_completed_nothing_are_no_data_not_held() -> None:
    """A run stopped before its first request (Ctrl-C while its connections opened, 1.1 s,
    0 requests) reached its stage but measured nothing. Before: "held — every stage up to 10
    iters/s met the thresholds; the limit is higher"."""
    empty = row(0, 10, requests=0, achieved_rps=0.0, p50_ms=None, p95_ms=None, p99_ms=None)
    a = assess([empty])
    assert (a.verdict, a.knee) == ("no data", None)
    assert "no request" in a.reason
    assert assess([row(0, 10, requests=0, iterations=3)]).verdict == "held"  # VUs' iterations


def test_bottleneck_priorities() -> None:
    first = row(0, 10)
    gen = row(1, 20, gen_cpu=97.0, server_cpu=390.0, server_hottest=99.0)
    assert bottleneck(gen, first)[0] == "generator"
    assert "may be the generator's" in bottleneck(gen, first)[1]
    lag = row(1, 20, gen_lag_ms=12.0)
    assert bottleneck(lag, first)[0] == "generator"
    assert assess([first, lag]).generator_warning
    # 8 ms of loop lag (a busy host) beside 1.5 s latency at a CPU-bound server: the server
    busy_host = row(
        1, 20, gen_lag_ms=8.0, p50_ms=1500.0, server_hottest=60.0, server_demand_hottest=99.0
    )
    assert bottleneck(busy_host, first)[0] == "server_cpu"
    assert assess([first, busy_host]).generator_warning  # still flagged beside the table
    # whole-tree saturation counts even when no single process is hot
    tree = row(1, 20, server_cpu=350.0, server_hottest=40.0)
    assert bottleneck(tree, first)[0] == "server_cpu"
    # a CPU-bound worker on a shared host gets 40 % of a core but is runnable all the time
    starved = row(1, 20, server_cpu=45.0, server_hottest=40.0, server_demand_hottest=98.0)
    assert bottleneck(starved, first)[0] == "server_cpu"
    assert "runnable 98% of the time" in bottleneck(starved, first)[1]
    idle = row(1, 20, server_cpu=45.0, server_hottest=40.0, server_demand_hottest=45.0)
    assert bottleneck(idle, first)[0] == "none"
    host = row(1, 20, server_cpu=None, server_hottest=None, node_cpu=91.0)
    assert bottleneck(host, first)[0] == "server_cpu"
    mem = row(1, 20, server_rss_mb=180.0)
    assert bottleneck(mem, first) == ("server_memory", bottleneck(mem, first)[1])
    assert "100 → 180 MB" in bottleneck(mem, first)[1]
    small_growth = row(1, 20, server_rss_mb=120.0)  # +20 %: noise, not a climb
    assert bottleneck(small_growth, first)[0] == "none"
    node_mem = row(1, 20, server_rss_mb=None, node_mem_pct=95.0)
    assert bottleneck(node_mem, row(0, 10, server_rss_mb=None))[0] == "server_memory"
    blind = row(1, 20, server_cpu=None, server_hottest=None, server_rss_mb=None)
    assert "no server resource data" in bottleneck(blind, first)[1]


# --------------------------------------------------------------------------- the table


def hist_of(*ms: float) -> Histogram:
    h = Histogram()
    for v in ms:
        h.record(int(v * 1000))
    return h


WINDOWS = {
    "s": [
        StageWindow("s", 0, 0.0, 2.0, 5, 5, "iters/s"),
        StageWindow("s", 1, 2.0, 4.0, 5, 10, "iters/s"),
    ]
}


def test_ticks_go_to_the_stage_holding_their_midpoint() -> None:
    ws = WINDOWS["s"]
    assert locate(ws, 1.0, 1.0) == 0
    assert locate(ws, 2.0, 1.0) == 0
    assert locate(ws, 3.0, 1.0) == 1
    assert locate(ws, 5.0, 1.0) is None  # graceful stop: no stage


def test_rows_have_exact_percentiles_from_recorded_histograms() -> None:
    rec = StageRecorder(WINDOWS)
    for t, values in ((1.0, [5, 6]), (2.0, [7]), (3.0, [100, 200, 300]), (4.0, [400])):
        iv = IntervalStats()
        iv.hist = hist_of(*values)
        rec.record("s", t, 1.0, iv)
    timeline = [
        tick(1, 5, **{"server.cpu_percent": 40.0, "server.rss_bytes": 1e8}),
        tick(2, 5, **{"server.cpu_percent": 60.0, "server.rss_bytes": 1.2e8}),
        tick(3, 8, 1, **{"server.cpu_percent": 90.0, "conn_errors.s": 1}),
        tick(4, 8, 1, **{"server.cpu_percent": None}),
        tick(4.05, 0),  # the final partial tick lands in stage 1 too, harmlessly
    ]
    timeline[-1]["span"] = 0.05
    rows = build_rows(rec, timeline, [("http_req_duration{scenario:s}", "p(95)<250")])
    a, b = rows
    assert (a.requests, a.seconds, a.achieved_rps) == (10, 2.0, 5.0)
    # k6's interpolation: [5, 6, 7] at i = 0.95 x 2 = 1.9 -> 6.9
    assert a.p95_ms == pytest.approx(6.9, rel=0.01) and a.exact_percentiles
    assert a.server_cpu == 50.0 and a.server_rss_mb == 120.0
    assert a.thresholds_ok is True
    assert b.requests == 16 and b.failed == 2 and b.error_rate == pytest.approx(0.125)
    assert b.conn_errors == 1 and b.server_cpu == 90.0  # None samples are skipped
    assert b.p95_ms == pytest.approx(385, rel=0.01) and b.p50_ms == pytest.approx(250, rel=0.01)
    assert b.thresholds_ok is False and "p(95)<250" in b.failed_thresholds[0]


def test_without_histograms_percentiles_are_request_weighted_and_marked() -> None:
    rows = build_rows(StageRecorder(WINDOWS), [tick(1, 5), tick(2, 5)])
    assert rows[0].p95_ms == 20.0 and not rows[0].exact_percentiles
    assert rows[1].reached is False and rows[1].thresholds_ok is None


def test_thresholds_for_other_scenarios_or_unknown_tags_do_not_apply_per_stage() -> None:
    timeline = [tick(1, 10, 5), tick(2, 10, 5)]  # 50 % errors
    other = [("http_req_failed{scenario:other}", "rate<0.01"), ("checks", "rate>0.99")]
    rows = build_rows(StageRecorder(WINDOWS), timeline, other)
    # none apply, so the defaults (errors < 1 %, p95 < 2 s) judge the stage
    assert rows[0].thresholds_ok is False
    assert "rate<0.01" in rows[0].failed_thresholds[0]
    lenient = build_rows(StageRecorder(WINDOWS), timeline, [("http_req_failed", "rate<0.6")])
    assert lenient[0].thresholds_ok is True
    by_status = [("http_req_failed{status:500}", "rate<0.6")]
    assert build_rows(StageRecorder(WINDOWS), timeline, by_status)[0].thresholds_ok is False


def test_other_percentiles_and_counts_per_stage() -> None:
    rec = StageRecorder(WINDOWS)
    iv = IntervalStats()
    iv.hist = hist_of(*range(1, 101))
    rec.record("s", 1.0, 1.0, iv)
    ths = [("http_req_duration", "p(90)<85"), ("http_reqs", "count>9")]
    r = build_rows(rec, [tick(1, 10)], ths)[0]
    assert r.thresholds_ok is False and "p(90)<85" in r.failed_thresholds[0]
    assert len(r.failed_thresholds) == 1


def test_recorder_round_trip_and_json_and_text() -> None:
    rec = StageRecorder(WINDOWS)
    iv = IntervalStats()
    iv.hist = hist_of(1, 2, 3)
    rec.record("s", 1.0, 1.0, iv)
    back = StageRecorder.from_dict(rec.to_dict())
    assert back.windows == rec.windows
    assert back.hists[("s", 0)].to_dict() == rec.hists[("s", 0)].to_dict()
    rows, assessments = stage_table(back, [tick(1, 3), tick(2, 3)])
    doc = to_json(rows, assessments)
    assert doc["rows"][0]["reached"] and not doc["rows"][1]["reached"]
    assert doc["scenarios"]["s"]["verdict"] == "held"
    text = render_text(rows, assessments)
    assert "knee: 5 iters/s" in text and "verdict: held" in text


def test_requests_finishing_in_the_graceful_stop_count_in_the_last_stage() -> None:
    """A one-stage run whose slow requests (1 s, a quarter of them) all finish after its
    schedule: they started in the stage, so its p95 is theirs and the threshold fails there,
    as it does for the run. Before: the stage kept only the fast ones (p95 3.3 ms in the run
    this mirrors), passed, and the verdict read "held — the limit is higher" beside a failed
    ``p(95)<500`` (observed 1002) and exit 99."""
    one = {"s": [StageWindow("s", 0, 0.0, 1.0, 20, 20, "iters/s")]}
    ticks = [(1.0, [1.0] * 15), (2.0, [1000.0] * 5), (2.5, [])]  # the stage, the stop
    rec = StageRecorder(one)
    timeline = []
    for t, values in ticks:
        iv = IntervalStats()
        iv.hist = hist_of(*values)
        rec.record("s", t, 1.0 if t <= 2.0 else 0.5, iv)
        timeline.append(tick(t, len(values)))
    timeline[-1]["span"] = 0.5
    rows, (a,) = stage_table(rec, timeline, [("http_req_duration", "p(95)<500")])
    (r,) = rows
    assert (r.requests, r.seconds) == (20, 1.0)  # the stop's requests, not its seconds
    assert r.p95_ms == pytest.approx(1000, rel=0.01)
    assert r.thresholds_ok is False and a.verdict != "held"
    # the same table from per-tick figures only (a run folder without stages.json)
    timeline[1]["scenarios"]["s"]["max_ms"] = 1000.0
    approx = build_rows(StageRecorder(one), timeline)
    assert (approx[0].requests, approx[0].max_ms) == (20, 1000.0)


#: A run folder scfleet wrote before 913748a (at d85bfca), from the run of
#: test_stage_graceful_stop.py (20/s for 1 s, every fourth upload answered after 1 s): its
#: stages.json's one stage holds the 15 fast requests; the 5 slow ones finished in the graceful
#: stop, in no stage (metrics.json, timeline.json and summary.json have all 20).
OLD_FOLDER = Path(__file__).parent / "data" / "run_graceful_stop_old"


def test_report_of_a_folder_from_before_the_stop_went_to_the_last_stage(tmp_path: Path) -> None:
    """``scfleet report`` counts the stop's requests in the last stage; its percentiles must
    be theirs too (rebuilt exactly from metrics.json), so the stage fails ``p(95)<500`` as the
    run did. Before: the row read 20 requests beside p95 3.9 ms and max 3.9 ms (the 15 fast
    ones' histogram) and the verdict "held — the limit is higher" beside exit 99."""
    from simulator.report.cli import build_reports

    run = tmp_path / "old"
    shutil.copytree(OLD_FOLDER, run)
    build_reports(run)
    stages = json.loads((run / "summary.json").read_text())["scfleet"]["stages"]
    (row,) = stages["rows"]
    assert (row["requests"], row["p95_ms"] > 900) == (20, True), row
    assert row["exact_percentiles"] and row["max_ms"] == pytest.approx(1002.3, abs=0.1)
    assert row["thresholds_ok"] is False and stages["scenarios"]["up"]["verdict"] != "held"


def test_report_of_such_a_folder_without_metrics_json_marks_the_stage_approximate(
    tmp_path: Path,
) -> None:
    """Without metrics.json the stop's latencies cannot be rebuilt exactly: the stage's
    figures come from its ticks (the stop's included), marked ``~``, never the 15 requests'
    histogram beside a count of 20."""
    from simulator.report.cli import build_reports

    run = tmp_path / "old"
    shutil.copytree(OLD_FOLDER, run)
    (run / "metrics.json").unlink()
    build_reports(run)
    (row,) = json.loads((run / "summary.json").read_text())["scfleet"]["stages"]["rows"]
    assert row["requests"] == 20 and not row["exact_percentiles"]
    assert row["max_ms"] == pytest.approx(1002.3, abs=0.1)
    assert "~" in (run / "summary.txt").read_text().split("STAGES")[1]


@pytest.mark.parametrize(
    ("cut", "thresholds", "verdict"),
    [
        (0, [], "held"),
        (1, [], "graceful"),  # 1 of 51: breaks the default rate<0.01
        (1, [("http_req_failed", "rate<0.05")], "held"),  # within the run's failure budget
        (10, [("http_req_duration", "p(95)<500")], "graceful"),  # 10 of 30: slow, no cliff
    ],
)
def test_iterations_cut_by_the_graceful_stop_count_against_the_last_stage(
    cut: int, thresholds: list[tuple[str, str]], verdict: str
) -> None:
    """A one-stage run whose cut iterations (their requests in no figure, as in k6) come in
    the stop's tick: the stage judges them against the failures' budget and the verdict names
    them. Before: no tick carried them; the stage read "held — the limit is higher"."""
    one = {"s": [StageWindow("s", 0, 0.0, 1.0, 20, 20, "iters/s")]}
    timeline = [tick(1.0, 20 if cut == 10 else 50), tick(2.0, 0)]
    timeline[1]["scenarios"]["s"]["interrupted"] = cut
    rows, (a,) = stage_table(StageRecorder(one), timeline, thresholds)
    (r,) = rows
    assert (r.cut, a.verdict) == (cut, verdict), a
    if verdict != "held":
        assert r.thresholds_ok is False and f"{cut} of " in a.reason, a
        assert f"+{cut} cut" in render_text(rows, [a])
    # a folder from before the count: its ticks have no "interrupted"
    del timeline[1]["scenarios"]["s"]["interrupted"]
    (old,) = build_rows(StageRecorder(one), timeline, thresholds)
    assert old.cut == 0 and old.thresholds_ok is True
