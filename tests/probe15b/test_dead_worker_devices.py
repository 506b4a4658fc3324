"""After a worker died, devices.csv says it lacks that worker's devices.

Found by SIGKILL of one of two workers 3 s into ``configs/smoke.toml``: summary.json counted
60 requests (both workers' up to the death), devices.csv listed only the living worker's 5
devices with 30 — half the run's devices gone from the per-device file without a word (a
device's row is in its worker's final report, which a killed worker never sends)."""

from __future__ import annotations

import csv
import json
import pathlib
import subprocess
import sys
import time

import psutil
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
LONG = "scenarios.iot_upload.stages=[{duration='2s',target=20},{duration='60s',target=20}]"


@pytest.mark.timeout(240)
def test_devices_csv_says_a_dead_workers_devices_are_missing(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", "configs/smoke.toml", "--set", LONG]
        + ["--out", str(out), "--workers", "2", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kids: list[psutil.Process] = []
    try:
        deadline = time.time() + 120
        while len(kids) < 2 and time.time() < deadline:
            kids = [
                c
                for c in psutil.Process(proc.pid).children()
                if "--multiprocessing-fork" in c.cmdline()
            ]
            time.sleep(0.1)
        stream = out / "run.ndjson"
        while time.time() < deadline and proc.poll() is None:
            if stream.exists() and stream.read_text().count('"type":"tick"') >= 3:
                break
            time.sleep(0.1)
        kids[0].kill()
        _stdout, stderr = proc.communicate(timeout=90)
    finally:
        for k in kids:
            if k.is_running():
                k.kill()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 103, stderr
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "devices.csv") as fh:
        rows = sum(int(r["requests"]) for r in csv.DictReader(fh))
    assert rows < summary["metrics"]["http_reqs"]["count"]  # the dead worker's devices
    notes = [n for n in summary["scfleet"]["notes"] if "devices.csv" in n]
    assert len(notes) == 1 and "worker 1 of 2" in notes[0], summary["scfleet"]["notes"]
    assert "devices.csv" in (out / "summary.txt").read_text()
