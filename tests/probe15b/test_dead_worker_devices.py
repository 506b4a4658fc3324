"""After a worker died, devices.csv says it lacks that worker's devices.

Found by SIGKILL of one of two workers 3 s into ``configs/smoke.toml``: summary.json counted
60 requests (both workers' up to the death), devices.csv listed only the living worker's 5
devices with 30 — half the run's devices gone from the per-device file without a word (a
device's row is in its worker's final report, which a killed worker never sends)."""

from __future__ import annotations

import csv
import json
import pathlib
import time

import pytest
from worker_runs import two_workers

pytestmark = pytest.mark.slow
LONG = "scenarios.iot_upload.stages=[{duration='2s',target=20},{duration='60s',target=20}]"


@pytest.mark.timeout(240)
def test_devices_csv_says_a_dead_workers_devices_are_missing(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    with two_workers(["configs/smoke.toml", "--set", LONG, "--out", str(out)]) as run:
        deadline = time.time() + 120
        kids = run.find_workers(2, deadline)
        run.wait_ticks(out / "run.ndjson", 3, deadline)
        kids[0].kill()
        _stdout, stderr = run.proc.communicate(timeout=90)
    assert run.proc.returncode == 103, stderr
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "devices.csv") as fh:
        rows = sum(int(r["requests"]) for r in csv.DictReader(fh))
    assert rows < summary["metrics"]["http_reqs"]["count"]  # the dead worker's devices
    notes = [n for n in summary["scfleet"]["notes"] if "devices.csv" in n]
    assert len(notes) == 1 and "worker 1 of 2" in notes[0], summary["scfleet"]["notes"]
    assert "devices.csv" in (out / "summary.txt").read_text()
