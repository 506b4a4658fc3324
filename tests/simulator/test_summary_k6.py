"""summary.json is k6's ``--summary-export`` document (plus one ``scfleet`` key), and
handle-summary.json is k6's ``handleSummary(data)`` object — both checked key by key against
files k6 1.1.0 wrote for the same thresholds and checks (``data/k6_1.1.0/script.js``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from simulator.config import parse_config
from simulator.metrics import Registry
from simulator.metrics.thresholds import evaluate_one
from simulator.report.exports import handle_summary
from simulator.report.summary import figures, render_text, summary_dict
from simulator.run.runner import RunResult, _RegistrySource

DATA = Path(__file__).parent / "data"
K6 = DATA / "k6_1.1.0"
THRESHOLDS = {
    "http_req_duration": ["p(95)<2000", "avg<0.0001"],
    "http_req_duration{scenario:up}": ["p(99)<3000"],
    "http_req_failed": ["rate<0.6"],
    "checks": ["rate>0.99"],
}


def make_result(stats: list[str] | None = None) -> RunResult:
    doc: dict[str, Any] = {
        "scenarios": {
            "up": {
                "executor": "constant-arrival-rate",
                "rate": 5,
                "duration": "2s",
                "pre_allocated_devices": 2,
            }
        },
        "thresholds": THRESHOLDS,
    }
    if stats is not None:
        doc["output"] = {"summary_trend_stats": stats}
    cfg = parse_config(doc, "t.toml")
    reg = Registry()
    ok = {"scenario": "up", "status": "200", "expected_response": "true"}
    bad = {"scenario": "up", "status": "404", "expected_response": "false"}
    for tags in (ok, bad):
        reg.get("http_reqs", tags).add(10)
        failed = reg.get("http_req_failed", tags)
        for _ in range(10):
            failed.add(tags is bad)
        for us in range(1000, 11000, 1000):
            reg.get("http_req_duration", tags).add_us(us)
            reg.get("http_req_corrected_duration", tags).add_us(us + 500)
    checks = reg.get("checks", {"scenario": "up", "check": "is status 200"})
    for i in range(20):
        checks.add(i % 2 == 0)
    reg.get("iterations", {"scenario": "up"}).add(10)
    reg.get("data_sent", {"scenario": "up"}).add(1940)
    reg.get("vus").set(2)
    src = _RegistrySource(reg, 2.0)
    results = [evaluate_one(t, src) for t in cfg.thresholds]
    return RunResult(cfg, reg, [], 1_764_140_000.0, 2.0, False, None, results, target="http://x")


def k6_export() -> dict[str, Any]:
    return json.loads((K6 / "summary-export.json").read_text())


def test_summary_json_has_k6s_keys_and_one_scfleet_key() -> None:
    ours = summary_dict(make_result())
    k6 = k6_export()
    assert set(ours) == set(k6) | {"scfleet"}
    assert ours["root_group"] == k6["root_group"]  # same check, same 10 passes / 10 fails
    common = set(ours["metrics"]) & set(k6["metrics"])
    assert {"http_req_duration", "http_req_failed", "checks", "http_reqs", "vus"} <= common
    assert "http_req_duration{scenario:up}" in common
    assert "http_req_duration{expected_response:true}" in common
    for key in common:
        assert set(ours["metrics"][key]) == set(k6["metrics"][key]), key
        if "thresholds" in k6["metrics"][key]:
            # k6's sense: true means the threshold FAILED
            assert ours["metrics"][key]["thresholds"] == k6["metrics"][key]["thresholds"], key
    # scfleet's own metrics and figures stay out of k6's part
    assert "http_req_corrected_duration" not in ours["metrics"]
    assert "p(99)" not in ours["metrics"]["http_req_duration"]
    extra = ours["scfleet"]["metrics"]
    assert extra["http_req_duration"]["p(99)"] == pytest.approx(10.0, rel=1e-3)
    assert extra["http_req_duration"]["count"] == 20
    assert extra["http_req_corrected_duration"]["count"] == 20
    assert [t["ok"] for t in ours["scfleet"]["thresholds"]] == [True, False, True, True, False]


def test_counts_are_integers_and_rates_use_k6s_value() -> None:
    ours = summary_dict(make_result())
    text = json.dumps(ours)
    m = ours["metrics"]
    assert m["http_reqs"]["count"] == 20 and isinstance(m["http_reqs"]["count"], int)
    assert '"count": 1940' in text and '"count": 20,' in text
    assert m["vus"] == {"value": 2, "min": 2, "max": 2}
    assert m["http_req_failed"] == {
        "passes": 10,
        "fails": 10,
        "value": 0.5,
        "thresholds": {"rate<0.6": False},
    }


def test_summary_trend_stats_choose_k6s_trend_keys() -> None:
    ours = summary_dict(make_result(["avg", "p(99.9)", "count"]))
    dur = ours["metrics"]["http_req_duration"]
    assert set(dur) == {"avg", "p(99.9)", "count", "thresholds"}
    assert dur["count"] == 20
    assert set(ours["scfleet"]["metrics"]["http_req_duration"]) == {"p(99)"}
    default = summary_dict(make_result())["metrics"]["http_req_duration"]
    assert set(default) == {"avg", "min", "med", "max", "p(90)", "p(95)", "thresholds"}


def test_a_trend_count_in_the_text_summary_is_a_count_not_ms() -> None:
    """``summary_trend_stats = [..., "count"]`` printed ``count=20.00ms`` (and a data trend's
    as bytes): a number of samples shown as a latency, where k6 prints ``count=20``."""
    text = render_text(make_result(["avg", "count"]))
    line = next(ln for ln in text.splitlines() if "http_req_duration...." in ln)
    assert "count=20" in line and "count=20." not in line, line
    assert "avg=5.50ms" in line, line


def test_handle_summary_matches_k6s_handle_summary_data() -> None:
    ours = handle_summary(summary_dict(make_result()))
    k6 = json.loads((K6 / "handle-summary.json").read_text())
    assert set(ours) == set(k6)
    strip = [
        {k: v for k, v in c.items() if k not in ("passes", "fails")}
        for c in k6["root_group"]["checks"]
    ]
    assert ours["root_group"] == k6["root_group"] | {"checks": ours["root_group"]["checks"]}
    assert [
        {k: v for k, v in c.items() if k not in ("passes", "fails")}
        for c in ours["root_group"]["checks"]
    ] == strip
    assert (
        ours["root_group"]["checks"][0]["passes"],
        ours["root_group"]["checks"][0]["fails"],
    ) == (10, 10)
    assert set(ours["options"]) == set(k6["options"]) and set(ours["state"]) == set(k6["state"])
    assert ours["options"]["summaryTrendStats"] == k6["options"]["summaryTrendStats"]
    common = set(ours["metrics"]) & set(k6["metrics"])
    assert {"http_req_duration", "http_req_failed", "checks", "http_reqs", "vus"} <= common
    for key in common:
        a, b = ours["metrics"][key], k6["metrics"][key]
        assert set(a) == set(b), key
        assert (a["type"], a["contains"]) == (b["type"], b["contains"]), key
        assert set(a["values"]) == set(b["values"]), key
        assert a.get("thresholds") == b.get("thresholds"), key  # {"ok": passed}


def test_text_summary_reads_the_new_shape() -> None:
    text = render_text(make_result())
    assert "50.00%  10 out of 20" in text  # http_req_failed and checks
    assert "p(99)=" in text  # scfleet still prints p99 beside k6's stats
    assert "http_req_corrected_duration" in text


def test_report_upgrades_a_run_folder_from_before_the_scfleet_key(tmp_path: Path) -> None:
    """A run folder written by the previous format (thresholds, state … at the top level)."""
    from simulator.report.cli import build_reports, load_run

    run = tmp_path / "old"
    shutil.copytree(DATA / "run_format1", run)
    old = json.loads((run / "summary.json").read_text())
    assert "scfleet" not in old and "thresholds" in old
    build_reports(run)
    new = json.loads((run / "summary.json").read_text())
    assert set(new) == {"root_group", "metrics", "scfleet"}
    assert new["scfleet"]["format"] == 1 and new["scfleet"]["stages"]["rows"]
    assert new["metrics"]["http_reqs"]["count"] == old["metrics"]["http_reqs"]["count"]
    assert new["metrics"]["http_req_failed"]["thresholds"] == {"rate<0.01": False}
    assert "rate" not in new["metrics"]["http_req_failed"]
    assert (
        figures(new, "http_req_duration")["p(99)"] == old["metrics"]["http_req_duration"]["p(99)"]
    )
    assert (run / "handle-summary.json").exists() and "thresholds passed" in (
        run / "report.html"
    ).read_text()
    assert load_run(run).summary == new  # and it reads back the same


def test_report_of_a_foreign_summary_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (:func:`scfleet.cli.main`): a subprocess cost ~0.5 s of CPU in the fast tier."""
    from scfleet.cli import main

    run = tmp_path / "foreign"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(k6_export()))  # k6's own file, not a run
    code = main(["report", str(run)])
    stderr = capsys.readouterr().err
    assert code == 104, stderr
    assert "summary.json" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
