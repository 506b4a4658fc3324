"""Exports other tools read: k6-shaped NDJSON, CSV, JUnit XML; and the SVG plot helper."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from simulator.report.exports import to_csv, to_junit, to_ndjson
from simulator.report.html import Series, StageMark, line_chart, nice_max

STARTED = 1_764_140_000.25


def timeline() -> list[dict[str, Any]]:
    def sc(requests: int, failed: int) -> dict[str, Any]:
        return {
            "requests": requests,
            "failed": failed,
            "dropped": 1,
            "iterations": requests,
            "sent": 100 * requests,
            "received": 10 * requests,
            "rps": float(requests),
            "active": 4,
            "p50_ms": 10.0,
            "p95_ms": 20.0,
            "p99_ms": 30.0,
            "max_ms": 40.0,
            "avg_ms": 12.5,
        }

    return [
        {
            "t": 1.0,
            "span": 1.0,
            "scenarios": {"a": sc(10, 1), "b": sc(0, 0)},
            "active": 8,
            "server.cpu_percent": 55.5,
            "conn_errors.a": 1,
            "node.cpu_percent": None,
        },
        {"t": 2.0, "span": 1.0, "scenarios": {"a": sc(20, 0), "b": sc(5, 5)}, "active": 8},
    ]


def test_ndjson_has_the_k6_point_shape() -> None:
    text = to_ndjson(timeline(), STARTED, [("http_req_failed", "rate<0.01")])
    lines = [json.loads(line) for line in text.splitlines()]
    declared: dict[str, dict[str, Any]] = {}
    points = []
    for obj in lines:
        assert set(obj) == {"type", "data", "metric"}
        if obj["type"] == "Metric":
            assert obj["metric"] == obj["data"]["name"]
            assert obj["data"]["type"] in {"counter", "gauge", "rate", "trend"}
            declared[obj["metric"]] = obj["data"]
        else:
            assert obj["type"] == "Point"
            assert obj["metric"] in declared, "a Point before its Metric declaration"
            assert set(obj["data"]) == {"time", "value", "tags"}
            points.append(obj)
    assert declared["http_req_failed"]["thresholds"] == ["rate<0.01"]
    assert declared["http_req_duration"]["contains"] == "time"
    assert declared["data_sent"]["contains"] == "data"
    when = datetime.fromisoformat(points[0]["data"]["time"])
    assert when.timestamp() == STARTED + 1.0 and points[0]["data"]["time"].endswith("Z")

    def values(metric: str, **tags: str) -> list[float]:
        return [
            p["data"]["value"]
            for p in points
            if p["metric"] == metric and all(p["data"]["tags"].get(k) == v for k, v in tags.items())
        ]

    assert values("http_reqs", scenario="a") == [10, 20]
    assert values("http_req_failed", scenario="a") == [0.1, 0.0]
    assert values("http_req_failed", scenario="b") == [1.0]  # no point for a tick without requests
    assert values("http_req_duration_p95", scenario="a") == [20.0, 20.0]
    assert values("scfleet_server_cpu_percent") == [55.5]
    assert values("scfleet_conn_errors", scenario="a") == [1]
    assert "scfleet_node_cpu_percent" not in declared  # None is "not sampled", not zero


def test_csv_has_a_row_per_tick_per_scenario_with_resource_columns() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(timeline(), STARTED))))
    assert [(r["t"], r["scenario"]) for r in rows] == [
        ("1.0", "a"),
        ("1.0", "b"),
        ("2.0", "a"),
        ("2.0", "b"),
    ]
    assert rows[0]["requests"] == "10" and rows[0]["server.cpu_percent"] == "55.5"
    assert rows[2]["server.cpu_percent"] == ""
    assert rows[0]["time"].startswith("2025-11-26T")


def test_junit_has_one_testcase_per_threshold_with_failures_marked() -> None:
    ths = [
        {"metric": "http_req_duration", "expression": "p(95)<500", "ok": False, "observed": 812.4},
        {"metric": "http_req_failed", "expression": "rate<0.01", "ok": True, "observed": 0.0},
        {"metric": "checks", "expression": "rate>0.9", "ok": True, "observed": None, "note": "x"},
    ]
    root = ET.fromstring(to_junit(ths, 12.5, STARTED))
    assert root.tag == "testsuites" and root.get("failures") == "1"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "3"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "http_req_duration: p(95)<500",
        "http_req_failed: rate<0.01",
        "checks: rate>0.9",
    ]
    failure = cases[0].find("failure")
    assert failure is not None and "812.4" in (failure.get("message") or "")
    assert cases[1].find("failure") is None and cases[2].find("failure") is None


def test_line_chart_draws_lines_gaps_and_stage_marks() -> None:
    svg = line_chart(
        "x",
        "T",
        "ms",
        [Series("a", [(0, 1.0), (1, 2.0), (2, None), (3, 4.0), (4, 5.0)]), Series("b", [])],
        [StageMark(0, 2, "S1"), StageMark(2, 4, "S2")],
        4.0,
    )
    ET.fromstring(svg)  # well-formed
    assert svg.count("<polyline") == 2  # the gap at t=2 splits series a
    assert svg.count('class="stage"') == 3  # two starts and the final end
    assert ">S2<" in svg
    empty = line_chart("y", "T", "ms", [Series("a", [(0, None)])], [], 1.0)
    assert "no samples" in empty and "<polyline" not in empty
    assert [nice_max(v) for v in (0, 0.7, 3, 7, 120)] == [1.0, 1.0, 5, 10, 200]
