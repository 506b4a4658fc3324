"""A worker that never gets ready (stopped while it starts) is named when the run gives up on
it: before, the one line said only 'workers not ready within 120s' — not which of them, nor its
pid, so the stuck process could not be found."""

from __future__ import annotations

import pathlib
import signal
import time

import pytest
from worker_runs import two_workers

from simulator.run.workers import READY_TIMEOUT

pytestmark = pytest.mark.slow


@pytest.mark.timeout(READY_TIMEOUT + 180)
def test_a_worker_stopped_while_it_starts_is_named(tmp_path: pathlib.Path) -> None:
    with two_workers(["configs/smoke.toml", "--out", str(tmp_path / "run")]) as run:
        victim = run.find_workers(1, time.time() + 60, poll=0)[0]
        victim.send_signal(signal.SIGSTOP)  # before it could say Ready (it imports for ~1 s)
        _stdout, stderr = run.proc.communicate(timeout=READY_TIMEOUT + 90)
    assert run.proc.returncode == 103, stderr
    assert "not ready" in stderr and f"pid {victim.pid}" in stderr, stderr
    assert "Traceback" not in stderr
