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
import time

import psutil
import pytest
from worker_runs import two_workers

from simulator.run import workers

pytestmark = pytest.mark.slow
HUNG_AFTER = getattr(workers, "HUNG_AFTER", 30.0)
LONG = "scenarios.iot_upload.stages=[{duration='2s',target=20},{duration='60s',target=20}]"


@pytest.mark.timeout(300)
def test_a_hung_worker_is_killed_named_and_the_result_written(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    with two_workers(["configs/smoke.toml", "--set", LONG, "--out", str(out)]) as run:
        deadline = time.time() + 120
        kids = run.find_workers(2, deadline)
        run.wait_ticks(out / "run.ndjson", 3, deadline)
        victim = kids[0]
        victim.send_signal(signal.SIGSTOP)
        try:
            _stdout, stderr = run.proc.communicate(timeout=HUNG_AFTER + 60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run still waits for the stopped worker {HUNG_AFTER + 60:.0f} s on")
    assert run.proc.returncode == 103, stderr
    assert f"pid {victim.pid}" in stderr and "Traceback" not in stderr, stderr
    assert "hung" in stderr, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["count"] > 20  # both workers' first seconds
    assert not psutil.pid_exists(victim.pid) or victim.status() == psutil.STATUS_ZOMBIE
