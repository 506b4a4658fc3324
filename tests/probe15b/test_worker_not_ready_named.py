"""A worker that never gets ready (stopped while it starts) is named when the run gives up on
it: before, the one line said only 'workers not ready within 120s' — not which of them, nor its
pid, so the stuck process could not be found."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import time

import psutil
import pytest

from simulator.run.workers import READY_TIMEOUT

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.timeout(READY_TIMEOUT + 180)
def test_a_worker_stopped_while_it_starts_is_named(tmp_path: pathlib.Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", "configs/smoke.toml"]
        + ["--out", str(tmp_path / "run"), "--workers", "2", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kids: list[psutil.Process] = []
    try:
        deadline = time.time() + 60
        while not kids and time.time() < deadline:
            kids = [
                c
                for c in psutil.Process(proc.pid).children()
                if "--multiprocessing-fork" in c.cmdline()
            ]
        victim = kids[0]
        victim.send_signal(signal.SIGSTOP)  # before it could say Ready (it imports for ~1 s)
        _stdout, stderr = proc.communicate(timeout=READY_TIMEOUT + 90)
    finally:
        for k in kids:
            if k.is_running():
                k.kill()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 103, stderr
    assert "not ready" in stderr and f"pid {victim.pid}" in stderr, stderr
    assert "Traceback" not in stderr
