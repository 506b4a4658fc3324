"""The regression gate cannot vouch for a run that did not run its schedule.

Found with ``scfleet compare runs/whole runs/cut --fail-on 'p(95)+50%,error_rate+0.5pp'``
where ``runs/cut`` lost a worker to ``kill -9`` after 4 s of 10 (exit 103, 213 of 500
requests; likewise one stopped by SIGTERM, exit 105): "gate: passed 2 of 2", exit 0, and not a
word that NEW was cut short — a CI job that crashed its load generator passed its gate.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from simulator.report import gate

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "{duration}"
pre_allocated_devices = 10
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 1000
"""


def _summary(**state: Any) -> dict[str, Any]:
    return {
        "metrics": {"http_req_duration": {"p(95)": 5.0}, "http_req_failed": {"value": 0.0}},
        "scfleet": {"state": {"interrupted": False, "abortedBy": None, **state}},
    }


def test_an_unfinished_run_fails_the_gate_whatever_its_figures() -> None:
    rules = gate.parse_spec("p(95)+10%")
    whole = gate.judge(rules, _summary(), _summary())
    assert all(o.ok for o in whole) and len(whole) == 1
    for base, new, says in (
        (_summary(), _summary(interrupted=True), "NEW run was interrupted"),
        (_summary(abortedBy="http_reqs: count<30"), _summary(), "BASE run was aborted"),
    ):
        out = gate.judge(rules, base, new)
        assert [o.ok for o in out] == [True, False], gate.render(out)
        assert says in gate.render(out) and "gate: FAILED 1 of 2" in gate.render(out)
        junit = gate.to_junit(out, "a", "b", None)
        assert 'failures="1"' in junit and says in junit


@pytest.mark.slow
def test_compare_against_a_run_stopped_by_sigterm_exits_99(tmp_path: pathlib.Path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    (tmp_path / "a.toml").write_text(SCENARIO.format(duration="2s"))
    (tmp_path / "b.toml").write_text(SCENARIO.format(duration="30s"))
    cmd = [sys.executable, "-m", "scfleet", "run", "--workers", "1", "--quiet", "--out"]
    done = subprocess.run([*cmd, str(whole), str(tmp_path / "a.toml")], cwd=ROOT, timeout=120)
    assert done.returncode == 0
    proc = subprocess.Popen([*cmd, str(cut), str(tmp_path / "b.toml")], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stream = cut / "run.ndjson"
            if stream.exists() and stream.read_text().count('"type":"tick"') >= 2:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 105
    finally:
        proc.kill()
    assert json.loads((cut / "summary.json").read_text())["scfleet"]["state"]["interrupted"]
    res = subprocess.run(
        [sys.executable, "-m", "scfleet", "compare", str(whole), str(cut)]
        + ["--fail-on", "p(95)+1000%,error_rate+1pp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 99, res.stdout + res.stderr
    assert "NEW run was interrupted" in res.stdout
    assert "gate: FAILED 1 of 3 (whole runs)" in res.stdout
