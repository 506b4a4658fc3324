"""A worker that hangs (stopped, or its loop blocked by a device) ends the run as a dead one
does: killed, named (number, segment, pid), what was merged written, exit 103.

Found by SIGSTOP of one of two workers 3 s into ``configs/smoke.toml`` cut to a 14 s schedule:
``scfleet run`` waited for its final report forever — 126 s later still running, no
summary.json, no line saying which worker it waited for.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time

import psutil
import pytest

from simulator.run import workers

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
HUNG_AFTER = getattr(workers, "HUNG_AFTER", 30.0)
LONG = "scenarios.iot_upload.stages=[{duration='2s',target=20},{duration='60s',target=20}]"


@pytest.mark.timeout(300)
def test_a_hung_worker_is_killed_named_and_the_result_written(tmp_path: pathlib.Path) -> None:
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
        victim = kids[0]
        victim.send_signal(signal.SIGSTOP)
        try:
            _stdout, stderr = proc.communicate(timeout=HUNG_AFTER + 60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run still waits for the stopped worker {HUNG_AFTER + 60:.0f} s on")
    finally:
        for k in kids:  # first: a stopped worker holds the run's stdout open
            if k.is_running():
                k.kill()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 103, stderr
    assert f"pid {victim.pid}" in stderr and "Traceback" not in stderr, stderr
    assert "hung" in stderr, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["count"] > 20  # both workers' first seconds
    assert not psutil.pid_exists(victim.pid) or victim.status() == psutil.STATUS_ZOMBIE
