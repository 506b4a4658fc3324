"""A metric a threshold names is in summary.json with k6's zeros when it got no samples, and
the gate still refuses to judge a latency figure of no requests.

Found against a loopback server answering every upload with 500 (5/s for 1 s): k6 1.1 writes
``http_req_duration{expected_response:true}`` and a script's empty custom trend as
``{"avg": 0, "min": 0, "med": 0, "max": 0, "p(90)": 0, "p(95)": 0, "thresholds": ...}`` and
lists them in its text summary; scfleet wrote ``{"thresholds": {"avg>50": true}}`` alone
(handle-summary.json ``"values": {}``) and left them out of summary.txt, so a reader of k6's
shape (``metrics[key]["avg"]``) failed on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from answering import run_empty_on_failure

from simulator.report import gate


@pytest.mark.slow
def test_empty_metrics_named_by_thresholds_are_zeros(tmp_path: Path) -> None:
    out = run_empty_on_failure(
        tmp_path,
        """my_batch_bytes = ["p(95)<2000"]
my_level = ["value<1"]
"http_req_duration{expected_response:true}" = ["p(95)<500"]
""",
    )
    doc = json.loads((tmp_path / "r" / "summary.json").read_text())
    m = doc["metrics"]
    zeros = {"avg": 0, "min": 0, "med": 0, "max": 0, "p(90)": 0, "p(95)": 0}
    assert {k: v for k, v in m["my_batch_bytes"].items() if k != "thresholds"} == zeros, m
    assert {k: v for k, v in m["my_level"].items() if k != "thresholds"} == {
        "value": 0,
        "min": 0,
        "max": 0,
    }, m
    key = "http_req_duration{expected_response:true}"
    assert {k: v for k, v in m[key].items() if k != "thresholds"} == zeros, m
    hs = json.loads((tmp_path / "r" / "handle-summary.json").read_text())["metrics"]
    assert hs["my_batch_bytes"]["values"]["avg"] == 0, hs["my_batch_bytes"]
    text = (tmp_path / "r" / "summary.txt").read_text()
    assert "my_batch_bytes...." in text and "my_level...." in text, text
    assert out.exit_code == 0


def _summary(p95: float, count: int) -> dict[str, Any]:
    key = "http_req_duration{expected_response:true}"
    return {
        "metrics": {key: {"p(95)": p95}},
        "scfleet": {"metrics": {key: {"count": count}}, "state": {}},
    }


def test_the_gate_does_not_read_a_latency_of_no_requests_as_zero() -> None:
    rules = gate.parse_spec("http_req_duration{expected_response:true}.p(95)+10%")
    (o,) = gate.judge(rules, _summary(40.0, 100), _summary(0, 0))
    assert not o.ok and "no samples in the NEW run" in o.detail(), o.detail()
    (o,) = gate.judge(rules, _summary(40.0, 100), _summary(41.0, 100))
    assert o.ok, o.detail()
