"""timeline.csv and timeline-1s.ndjson carry the iterations the graceful stop cut, per tick.

The summary (``interrupted_iterations``) and the stage table (``cut``) have the count, and
timeline.json has it per tick (``interrupted``); the two exports made from timeline.json left it
out, so a spreadsheet of the run showed the last second's iterations finishing and nothing cut.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from simulator.report.exports import to_csv, to_ndjson

STARTED = 1_764_140_000.0


def _tick(t: float, iterations: int, interrupted: int | None) -> dict[str, Any]:
    s: dict[str, Any] = {
        "requests": iterations,
        "failed": 0,
        "dropped": 0,
        "iterations": iterations,
        "sent": 10,
        "received": 1,
        "rps": float(iterations),
        "active": 2,
        "p50_ms": 1.0,
        "p95_ms": 2.0,
        "p99_ms": 3.0,
        "max_ms": 4.0,
        "avg_ms": 1.5,
    }
    if interrupted is not None:
        s["interrupted"] = interrupted
    return {"t": t, "span": 1.0, "scenarios": {"up": s}, "active": 2}


def test_csv_has_the_cut_count_beside_iterations() -> None:
    text = to_csv([_tick(1.0, 10, 0), _tick(2.0, 4, 6)], STARTED)
    header = text.splitlines()[0].split(",")
    assert header[header.index("iterations") + 1] == "interrupted", header
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["interrupted"] for r in rows] == ["0", "6"]


def test_a_folder_from_before_the_count_has_an_empty_cell_not_a_made_up_zero() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv([_tick(1.0, 10, None)], STARTED))))
    assert rows[0]["interrupted"] == "" and rows[0]["iterations"] == "10"


def test_ndjson_has_interrupted_iterations_points() -> None:
    lines = [
        json.loads(x)
        for x in to_ndjson([_tick(1.0, 10, 0), _tick(2.0, 4, 6)], STARTED).splitlines()
    ]
    decl = [
        x["data"]
        for x in lines
        if x["type"] == "Metric" and x["metric"] == "interrupted_iterations"
    ]
    assert decl and decl[0]["type"] == "counter"
    points = [
        x["data"]["value"]
        for x in lines
        if x["type"] == "Point" and x["metric"] == "interrupted_iterations"
    ]
    assert points == [0, 6]
    old = to_ndjson([_tick(1.0, 10, None)], STARTED)
    assert "interrupted_iterations" not in old
