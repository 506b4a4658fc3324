"""``--out json=FILE`` / ``--out csv=FILE``: k6's per-sample streams.

The formatter is checked value by value against Python's own formatting; the file shapes
against what k6 1.1.0 wrote (tests/simulator/data/k6_1.1.0/out.json, out.csv); and a real run
against its own summary (one point per request, per iteration, per check), written while the
run goes.
"""

from __future__ import annotations

import csv
import json
import pathlib
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from simulator.report.streams import CSV_COLUMNS, PointWriter, Stream

DATA = pathlib.Path(__file__).parent / "data" / "k6_1.1.0"
ROOT = pathlib.Path(__file__).resolve().parents[2]
TAGS = (
    ("endpoint", "/api/x"),
    ("expected_response", "true"),
    ("method", "POST"),
    ("name", "/api/x"),
    ("proto", "HTTP/1.1"),
    ("scenario", "up"),
    ("status", "200"),
    ("url", "http://127.0.0.1:1/api/x"),
)


def rows(values_us: list[int], start_ns: int) -> np.ndarray:
    n = len(values_us)
    r = np.zeros((n, 13), dtype=np.int64)  # a RequestSample, then its end time
    r[:, 2:8] = r[:, 11:12] = np.array(values_us, dtype=np.int64)[:, None]
    r[:, 1] = np.arange(n) % 2
    r[:, 8] = np.arange(n) * 1000 + 7
    r[:, 12] = start_ns + np.arange(n) * 123_456_789
    return r


def write(
    tmp_path: pathlib.Path, values: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, str]], np.ndarray, int]:
    w = PointWriter(
        [Stream("json", tmp_path / "p.json"), Stream("csv", tmp_path / "p.csv")],
        {"http_req_duration": ("trend", "time"), "http_reqs": ("counter", "default")},
        [
            ("http_req_duration", "p(95)<2000", ()),
            ("http_req_duration{scenario:up}", "p(99)<9", (("scenario", "up"),)),
        ],
    )
    perf0 = time.perf_counter_ns()
    r = rows(values, perf0)
    w.requests(TAGS, (("scenario", "up"),), r)
    w.close()
    wall0 = w._wall(np.array([perf0]))[0]  # noqa: SLF001 - the clock mapping under test
    lines = [json.loads(line) for line in (tmp_path / "p.json").read_text().splitlines()]
    with open(tmp_path / "p.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    return lines, table, r, int(wall0)


def test_values_and_times_format_exactly(tmp_path: pathlib.Path) -> None:
    values = [0, 1, 999, 1000, 1001, 20_500, 123_456_789, 5, 10_000_000_000]
    lines, table, r, wall0 = write(tmp_path, values)
    points = [o for o in lines if o["type"] == "Point" and o["metric"] == "http_req_duration"]
    assert [p["data"]["value"] for p in points] == [v / 1000 for v in values]
    for i, p in enumerate(points):
        ns = wall0 + i * 123_456_789
        want = datetime.fromtimestamp(ns // 10**9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert p["data"]["time"] == f"{want}.{ns % 10**9:09d}Z"
        assert p["data"]["tags"] == dict(TAGS) | {"group": ""}
    failed = [
        o["data"]["value"]
        for o in lines
        if o.get("metric") == "http_req_failed" and o["type"] == "Point"
    ]
    assert failed == [i % 2 for i in range(len(values))]
    sent = [
        o["data"]["value"] for o in lines if o.get("metric") == "data_sent" and o["type"] == "Point"
    ]
    assert sent == [i * 1000 + 7 for i in range(len(values))]
    dur = [row for row in table if row["metric_name"] == "http_req_duration"]
    assert [float(row["metric_value"]) for row in dur] == [v / 1000 for v in values]
    assert [int(row["timestamp"]) for row in dur] == [
        (wall0 + i * 123_456_789) // 10**9 for i in range(len(values))
    ]
    assert {row["extra_tags"] for row in dur} == {"endpoint=/api/x"}
    assert {
        (row["method"], row["status"], row["expected_response"], row["proto"]) for row in dur
    } == {("POST", "200", "true", "HTTP/1.1")}


def test_negative_values_stay_valid_json_and_csv(tmp_path: pathlib.Path) -> None:
    lines, table, _, _ = write(tmp_path, [-1500, 7, -3, 120_000])
    got = [
        o["data"]["value"]
        for o in lines
        if o.get("metric") == "http_req_waiting" and o["type"] == "Point"
    ]
    assert got == [-1.5, 0.007, -0.003, 120.0]
    got_csv = [float(r["metric_value"]) for r in table if r["metric_name"] == "http_req_waiting"]
    assert got_csv == [-1.5, 0.007, -0.003, 120.0]


def test_shapes_match_what_k6_wrote(tmp_path: pathlib.Path) -> None:
    lines, _, _, _ = write(tmp_path, [1000, 2000])
    k6 = [json.loads(line) for line in (DATA / "out.json").read_text().splitlines()]
    k6_metric = next(o for o in k6 if o["type"] == "Metric")
    k6_point = next(o for o in k6 if o["type"] == "Point")
    ours_metric = next(o for o in lines if o["type"] == "Metric")
    ours_point = next(o for o in lines if o["type"] == "Point")
    assert set(ours_metric) == set(k6_metric) and set(ours_metric["data"]) == set(k6_metric["data"])
    assert set(ours_point) == set(k6_point) and set(ours_point["data"]) == set(k6_point["data"])
    k6_http = next(o for o in k6 if o.get("metric") == "http_req_duration" and o["type"] == "Point")
    assert set(k6_http["data"]["tags"]) - {"endpoint", "kind"} <= set(ours_point["data"]["tags"])
    decl = {o["metric"]: o["data"] for o in lines if o["type"] == "Metric"}
    assert decl["http_req_duration"]["thresholds"] == ["p(95)<2000"]
    assert decl["http_req_duration"]["submetrics"] == [
        {
            "name": "http_req_duration{scenario:up}",
            "suffix": "scenario:up",
            "tags": {"scenario": "up"},
        }
    ]
    header = (DATA / "out.csv").read_text().splitlines()[0]
    assert ",".join(CSV_COLUMNS) == header
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == header


def test_out_flag_values_are_checked(capsys: Any) -> None:
    from scfleet.cli import main

    for bad in (
        ["--out", "json="],
        ["--out", "json=a", "--out", "json=b"],
        ["--out", "a", "--out", "b"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(["run", "configs/smoke.toml", *bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--out" in err


@pytest.mark.slow
def test_a_run_streams_one_point_per_sample_as_it_goes(tmp_path: pathlib.Path) -> None:
    out, js, cs = tmp_path / "run", tmp_path / "s.json", tmp_path / "s.csv"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scfleet",
            "run",
            "configs/smoke.toml",
            "--rate",
            "20",
            "--duration",
            "4s",
            "--quiet",
            "--out",
            str(out),
            "--out",
            f"json={js}",
            "--out",
            f"csv={cs}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen_mid_run = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if js.exists() and b'"type":"Point"' in js.read_bytes():
            seen_mid_run = proc.poll() is None  # points on disk while the run goes on
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr + stdout
    assert seen_mid_run
    summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    lines = [json.loads(line) for line in js.read_text().splitlines()]
    points: dict[str, list[dict[str, Any]]] = {}
    for o in lines:
        if o["type"] == "Point":
            points.setdefault(o["metric"], []).append(o["data"])
    reqs = m["http_reqs"]["count"]
    assert reqs == 80
    for name in ("http_reqs", "http_req_duration", "http_req_failed", "data_sent"):
        assert len(points[name]) == reqs, name
    assert (
        len(points["iterations"]) == len(points["iteration_duration"]) == m["iterations"]["count"]
    )
    check = summary["root_group"]["checks"]["is status 200"]
    assert len(points["checks"]) == check["passes"] + check["fails"]
    assert sum(p["value"] for p in points["data_sent"]) == m["data_sent"]["count"]
    durations = sorted(p["value"] for p in points["http_req_duration"])
    assert durations[-1] == pytest.approx(m["http_req_duration"]["max"], abs=0.001)
    assert all(
        p["tags"]["status"] == "200" and p["tags"]["method"] == "POST" for p in points["http_reqs"]
    )
    times = [
        datetime.fromisoformat(p["time"].replace("Z", "+00:00")[:26] + "+00:00")
        for p in points["http_reqs"]
    ]
    started = datetime.fromtimestamp(summary["scfleet"]["state"]["startedAt"], tz=UTC)
    assert min(times) >= started and (max(times) - min(times)).total_seconds() < 4.5
    declared = [o["metric"] for o in lines if o["type"] == "Metric"]
    assert len(declared) == len(set(declared)) and set(points) <= set(declared)
    with open(cs, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == sum(len(v) for v in points.values())
    assert len(points["vus"]) >= 3  # sampled once per tick


def test_each_streamed_http_metric_carries_its_own_field(tmp_path: pathlib.Path) -> None:
    """A request row streams each of k6's per-request metrics from its own RequestSample
    field (http_req_blocked, last in the sample, included): a column off by one would
    stream one phase under another's name."""
    from simulator.metrics.recorders import RequestSample

    sample = RequestSample(
        200,  # status
        False,  # failed
        30_000,  # duration_us
        2_000,  # connecting_us
        3_000,  # sending_us
        25_000,  # waiting_us
        2_000 + 5,  # receiving_us
        41_000,  # corrected_us
        32_123,  # sent
        77,  # received
        0,  # error
        9_000,  # blocked_us
    )
    perf0 = time.perf_counter_ns()
    row = np.array([[*sample, perf0]], dtype=np.int64)
    w = PointWriter([Stream("json", tmp_path / "p.json")], {}, [])
    w.requests(TAGS, (("scenario", "up"),), row)
    w.close()
    points = {
        o["metric"]: o["data"]["value"]
        for o in map(json.loads, (tmp_path / "p.json").read_text().splitlines())
        if o["type"] == "Point"
    }
    assert points == {
        "http_reqs": 1,
        "http_req_failed": 0,
        "http_req_duration": 30.0,
        "http_req_connecting": 2.0,
        "http_req_sending": 3.0,
        "http_req_waiting": 25.0,
        "http_req_receiving": 2.005,
        "http_req_corrected_duration": 41.0,
        "http_req_blocked": 9.0,
        "data_sent": 32_123,
        "data_received": 77,
    }
