"""``scfleet run --out prometheus=[HOST:]PORT``: scraped during a real run and parsed with
prometheus_client's own parser; a port in use is one line before the run starts."""

from __future__ import annotations

import json
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 30
time_unit = "1s"
duration = "6s"
pre_allocated_devices = 10
max_devices = 20

[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 2000

[[scenarios.up.checks]]
name = "is status 200"
status = 200

[thresholds]
http_reqs = ["count>0"]
"""


def _scrape(url: str) -> dict[str, Any] | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return {f.name: f for f in text_string_to_metric_families(text)}


def _requests(families: dict[str, Any]) -> float:
    fam = families.get("k6_http_reqs")  # the parser names a counter's family without _total
    return sum(s.value for s in fam.samples if s.name == "k6_http_reqs_total") if fam else 0.0


def test_scrape_during_a_run(tmp_path: pathlib.Path, free_port: int) -> None:
    cfg = tmp_path / "up.toml"
    cfg.write_text(SCENARIO)
    url = f"http://127.0.0.1:{free_port}/metrics"
    proc = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", str(cfg), "--quiet"]
        + ["--out", str(tmp_path / "run"), "--out", f"prometheus={free_port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[float] = []
    families: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and len(set(seen)) < 3:
            got = _scrape(url)
            if got and _requests(got) > 0:
                families = got
                if not seen or _requests(got) > seen[-1]:
                    seen.append(_requests(got))
            time.sleep(0.3)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err + out
    assert len(seen) >= 3, f"the count rose {len(seen)} times while the run went: {seen}"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert seen[-1] <= summary["metrics"]["http_reqs"]["count"]
    # the labels: scenario, kind, status (and k6's other HTTP tags)
    reqs = [s for s in families["k6_http_reqs"].samples if s.name == "k6_http_reqs_total"]
    assert all(
        s.labels["scenario"] == "up" and s.labels["kind"] == "virtual" and s.labels["status"]
        for s in reqs
    )
    # latency as a Prometheus histogram: cumulative buckets, +Inf equal to the count
    dur = families["k6_http_req_duration_seconds"]
    assert dur.type == "histogram"
    by_series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for s in dur.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name.endswith("_bucket"):
            by_series.setdefault(key, []).append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            counts[key] = s.value
    assert by_series and counts
    for key, buckets in by_series.items():
        buckets.sort()
        values = [v for _, v in buckets]
        assert values == sorted(values) and buckets[-1][0] == float("inf")
        assert values[-1] == counts[key]
    assert sum(counts.values()) >= 1
    for name in ("k6_vus", "k6_vus_max", "k6_iterations", "k6_http_req_failed_rate"):
        assert name in families, sorted(families)
    assert families["k6_http_req_failed_rate"].type == "gauge"
    # the shipped Grafana dashboard asks only for metrics this endpoint has
    dash = json.loads((ROOT / "dashboards" / "scfleet-prometheus.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exposed = {s.name for f in families.values() for s in f.samples}
    for expr in exprs:
        for metric in re.findall(r"\bk6_[a-z_]+", expr):
            assert metric in exposed, (metric, expr)
    # the run is over: the endpoint is closed, not left serving a stale run
    assert _scrape(url) is None


def test_port_in_use_is_one_line_before_the_run(tmp_path: pathlib.Path, scfleet: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        res = scfleet(
            "run", "configs/smoke.toml", "--target", "http://127.0.0.1:9", "--out",
            str(tmp_path / "run"), "--out", f"prometheus=127.0.0.1:{port}",
        )  # fmt: skip
    assert res.returncode == 104, res.stderr
    assert res.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in res.stderr, res.stderr
    assert "prometheus" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()  # refused before the folder was claimed
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("spec", ["prometheus=", "prometheus=abc", "prometheus=host:70000"])
def test_bad_endpoint_is_a_usage_error(spec: str, scfleet: Any) -> None:
    res = scfleet("run", "configs/smoke.toml", "--out", spec)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "prometheus" in res.stderr


def _total(families: dict[str, Any], family: str) -> float:
    fam = families.get(family)
    return sum(s.value for s in fam.samples if s.name == f"{family}_total") if fam else -1.0


def test_a_finished_run_is_scrapeable_until_the_process_exits(
    tmp_path: pathlib.Path, free_port: int
) -> None:
    """``--linger`` (k6's): once the run is over, /metrics serves its final values — equal to
    summary.json's, the last partial second included — until Ctrl-C; the process then exits
    with the run's code at once and a scrape is refused (what a scraper reports as down)."""
    import signal

    cfg = tmp_path / "up.toml"
    cfg.write_text(SCENARIO.replace('duration = "6s"', 'duration = "2500ms"'))
    url = f"http://127.0.0.1:{free_port}/metrics"
    proc = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", str(cfg), "--quiet", "--linger"]
        + ["--out", str(tmp_path / "run"), "--out", f"prometheus={free_port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    summary_file = tmp_path / "run" / "summary.json"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not summary_file.exists():
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)  # the summary is printed after the folder is written: the run is over
        summary = json.loads(summary_file.read_text())
        first, second = _scrape(url), _scrape(url)  # repeated scrapes: the same final figures
        assert first is not None and second is not None
        m = summary["metrics"]
        for got in (first, second):
            assert _total(got, "k6_http_reqs") == m["http_reqs"]["count"] > 0
            assert _total(got, "k6_iterations") == m["iterations"]["count"]
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err  # the run's own exit code, not "interrupted"
    assert took < 10, took
    assert "--linger" in err and url in err and "Traceback" not in err, err
    assert _scrape(url) is None  # the process is gone: refused


def test_linger_with_nothing_to_keep_says_so_in_one_line(
    tmp_path: pathlib.Path, scfleet: Any
) -> None:
    cfg = tmp_path / "up.toml"
    cfg.write_text(SCENARIO.replace('duration = "6s"', 'duration = "1s"'))
    res = scfleet("run", str(cfg), "--quiet", "--linger", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert "--linger: no --out prometheus= to keep serving" in res.stderr
