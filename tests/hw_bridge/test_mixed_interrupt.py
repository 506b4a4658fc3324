"""Issue 10 item 10: Ctrl-C in a mixed run (virtual devices + emulated boards) stops cleanly —
no "Task was destroyed" noise, no traceback, and the boards are not reported as lost."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from simulator.report.summary import figures

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _ticks(run: pathlib.Path) -> int:
    path = run / "run.ndjson"
    return path.read_text().count('"type":"tick"') if path.exists() else 0


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_in_a_mixed_run_is_clean(tmp_path: pathlib.Path, presses: int) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", "configs/mixed_fleet.toml"]
        + ["--out", str(run), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + 90
        while _ticks(run) < 3:  # boards started and uploading
            assert time.monotonic() < end and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    assert proc.returncode == 105, err
    for noise in ("Traceback", "Task was destroyed", "never retrieved", "Exception in callback"):
        assert noise not in err, err
    summary = json.loads((run / "summary.json").read_text())
    notes = summary["scfleet"]["notes"]
    assert not [n for n in notes if "lost" in n], notes
    lost = figures(summary, "boards_lost")
    assert not lost or lost.get("count", 0) == 0, lost
    assert int(figures(summary, "http_reqs{kind:physical}")["count"]) > 0
