"""Whole runs that exercise the report: a saturated reference server, a crash, an interrupted
run, the rebuild through ``scfleet report``, ``scfleet compare`` and the HTML in Chromium."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

import pytest

from simulator.report.cli import REPORT_FILES

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = pathlib.Path("/usr/bin/chromium")
pytestmark = pytest.mark.slow

# One analysis worker, 150 ms of extra CPU per analysis: capacity ≈ 5 analyses/s. The first
# stage (2/s) is well within it; the last (14/s) is nearly three times over.
SATURATE = """
[server]
analysis_workers = 1
extra_cost_ms = 150

[scenarios.ai]
executor = "ramping-arrival-rate"
start_rate = 2
time_unit = "1s"
pre_allocated_devices = 10
max_devices = 80
graceful_stop = "1s"
stages = [
  { duration = "3s", target = 2 },
  { duration = "1s", target = 14 },
  { duration = "4s", target = 14 },
]

[scenarios.ai.device]
kind = "ai_analysis"
min_seconds = 1
max_seconds = 2

[thresholds]
"http_req_duration{scenario:ai}" = ["p(95)<1000"]
http_req_failed = ["rate<0.05"]
"""


def scfleet(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scfleet", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def saturated(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    base = tmp_path_factory.mktemp("saturate")
    cfg = base / "saturate.toml"
    cfg.write_text(SATURATE)
    out = base / "run"
    res = scfleet("run", str(cfg), "--out", str(out), "--quiet")
    assert res.returncode == 99, res.stderr + res.stdout  # the p95 threshold fails
    assert "Traceback" not in res.stderr
    return out


def test_saturated_server_stage_table_and_verdict(saturated: pathlib.Path) -> None:
    summary = json.loads((saturated / "summary.json").read_text())
    rows = summary["scfleet"]["stages"]["rows"]
    assert [r["label"] for r in rows] == ["2 iters/s", "2→14 iters/s", "14 iters/s"]
    first, last = rows[0], rows[-1]
    assert all(r["reached"] and r["exact_percentiles"] for r in rows)
    assert first["thresholds_ok"] is True and first["p95_ms"] < 1000
    assert first["achieved_rps"] == pytest.approx(2.0, abs=0.6)
    # past capacity: latency climbs, completions stay at capacity, far below the offer
    assert last["thresholds_ok"] is False and last["p95_ms"] > 1000
    assert last["achieved_rps"] < 0.6 * last["offered"]
    assert last["achieved_rps"] > first["achieved_rps"]
    assert last["error_rate"] == 0
    assert last["server_hottest"] > first["server_hottest"]
    # the worker is CPU-bound in the last stage: it ran or waited for a core nearly all the
    # time, however much of a core a busy host gave it
    assert last["server_demand_hottest"] >= 85
    a = summary["scfleet"]["stages"]["scenarios"]["ai"]
    assert a["knee"] in (0, 1) and a["knee_label"] in ("2 iters/s", "2→14 iters/s")
    assert a["verdict"] == "graceful", a
    assert a["bottleneck"] == "server_cpu", a
    text = (saturated / "summary.txt").read_text()
    assert "verdict: graceful" in text and "bottleneck: server CPU saturated" in text
    # exports made from the same run
    lines = (saturated / "timeline-1s.ndjson").read_text().splitlines()
    objs = [json.loads(line) for line in lines]
    reqs = sum(
        o["data"]["value"] for o in objs if o["metric"] == "http_reqs" and o["type"] == "Point"
    )
    assert reqs == summary["metrics"]["http_reqs"]["count"]
    assert any(o["metric"] == "scfleet_server_cpu_percent" for o in objs)
    suite = ET.parse(saturated / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "2"


def test_report_rebuilds_the_same_files(saturated: pathlib.Path, tmp_path: pathlib.Path) -> None:
    run = tmp_path / "copy"
    shutil.copytree(saturated, run, ignore=shutil.ignore_patterns("server"))
    before = {n: (run / n).read_bytes() for n in (*REPORT_FILES, "summary.json", "summary.txt")}
    for name in REPORT_FILES:
        (run / name).unlink()
    summary = json.loads((run / "summary.json").read_text())
    del summary["scfleet"]["stages"]
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    res = scfleet("report", str(run))
    assert res.returncode == 0, res.stderr
    for name, data in before.items():
        assert (run / name).read_bytes() == data, name
    # without stages.json the windows come from config.json; percentiles become approximate
    (run / "stages.json").unlink()
    assert scfleet("report", str(run)).returncode == 0
    rows = json.loads((run / "summary.json").read_text())["scfleet"]["stages"]["rows"]
    assert len(rows) == 3 and not any(r["exact_percentiles"] for r in rows)
    assert "~" in (run / "summary.txt").read_text()


def test_report_writes_summary_txt_from_the_model(
    saturated: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """summary.txt is written from the run-folder model (summary.json, config.json,
    devices.csv), not patched: a deleted or stale one comes back as the run wrote it."""
    run = tmp_path / "copy"
    shutil.copytree(saturated, run, ignore=shutil.ignore_patterns("server"))
    before = (run / "summary.txt").read_bytes()
    (run / "summary.txt").unlink()
    assert scfleet("report", str(run)).returncode == 0
    assert (run / "summary.txt").read_bytes() == before
    (run / "summary.txt").write_text("stale\n")
    assert scfleet("report", str(run)).returncode == 0
    assert (run / "summary.txt").read_bytes() == before


def test_report_of_a_missing_folder_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    res = scfleet("report", str(tmp_path / "nope"))
    assert res.returncode == 104 and "no such run folder" in res.stderr
    assert "Traceback" not in res.stderr


def test_compare_names_what_got_worse(saturated: pathlib.Path, tmp_path: pathlib.Path) -> None:
    same = scfleet("compare", str(saturated), str(saturated))
    assert same.returncode == 0, same.stderr
    assert "0 better" in same.stdout and "0 worse" in same.stdout
    worse = tmp_path / "worse"
    shutil.copytree(saturated, worse, ignore=shutil.ignore_patterns("server"))
    summary = json.loads((worse / "summary.json").read_text())
    summary["metrics"]["http_req_duration"]["p(95)"] *= 2
    summary["metrics"]["http_req_failed"]["value"] = 0.2
    (worse / "summary.json").write_text(json.dumps(summary))
    res = scfleet("compare", str(saturated), str(worse))
    assert res.returncode == 0, res.stderr
    line = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.strip()}
    assert "worse" in line["p95"] and "worse" in line["error"]
    assert "same" in line["throughput"]
    assert "2 worse (p95 latency, error rate)" in res.stdout


def _png_pixels_vary(png: bytes) -> tuple[int, float]:
    """(distinct byte values, share of non-white/black bytes) in the decompressed image data."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    mid = sum(1 for b in raw[::7] if b not in (0, 255)) / max(len(raw[::7]), 1)
    return len(set(raw)), mid


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium missing (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(
    saturated: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    report = saturated / "report.html"
    html = report.read_text()
    # self-contained: scripts inline (uPlot, vendored), no external stylesheets, images or fonts
    assert not re.search(r"<script[^>]*\bsrc=", html) and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [str(CHROMIUM), *flags, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    plots = set(re.findall(r'<svg class="plot" data-plot="([a-z-]+)"', dom))
    assert plots == {"latency", "rps", "errors", "active", "cpu", "memory"}
    assert dom.count("<polyline") >= 8
    assert dom.count('class="stage"') >= 4 * len(plots)
    table = re.search(r'<table class="stages".*?</table>', dom, re.S)
    assert table is not None and table.group(0).count("<tr") == 4  # header + 3 stages
    assert 'data-verdict="graceful"' in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [str(CHROMIUM), *flags, "--window-size=1000,1800", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=60,
    )
    distinct, share = _png_pixels_vary(shot.read_bytes())
    assert distinct > 50 and share > 0.01, (distinct, share)
