"""A run folder that cannot be written at the end of a run (disk full, the folder gone) costs
one line naming the file and why, a non-zero exit and the summary on stdout — never a traceback
with every figure lost.

Found with ``--out`` on a 24 KB tmpfs: the stream filled it mid-run, then writing config.json
failed and ``scfleet run`` ended in an ``OSError: [Errno 28] No space left on device``
traceback, exit 1, nothing on stdout: the whole run's measurements gone. Here the disk is a
per-file size limit (``RLIMIT_FSIZE``, no root needed) or the folder replaced by a file mid-run.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from answering import answering

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "2s"
pre_allocated_devices = 4
graceful_stop = "2s"
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 3200
[thresholds]
http_req_failed = ["rate<0.01"]
"""


def _cli(tmp_path: Path, url: str, out: Path, limit: int | None = None) -> subprocess.Popen[str]:
    (tmp_path / "up.toml").write_text(SCENARIO)

    def small_files() -> None:  # a file past ``limit`` bytes fails its write with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", str(tmp_path / "up.toml"), "--target", url]
        + ["--out", str(out), "--workers", "1", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
        preexec_fn=small_files,
    )


def _printed(metric: str, stdout: str) -> int:
    """A counter's count on the printed summary (0 when not printed)."""
    found = re.search(rf"^\s*{metric}\.*: (\d+) ", stdout, re.MULTILINE)
    return int(found[1]) if found else 0


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.timeout(120)
def test_files_too_large_for_the_disk_are_stated_lost_with_the_summary_printed(
    tmp_path: Path,
) -> None:
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "r"
    with answering(200, 0.0) as url:
        proc = _cli(tmp_path, url, out, limit=4096)
        stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 103, stderr
    line = _one_line(stderr)
    assert str(out) in line and "File too large" in line and "not written" in line, line
    # the figures, on the terminal: every arrival of the plan, started or dropped (a machine too
    # busy to reach some within MAX_LATE drops and counts them; "40" anywhere passed by chance)
    assert _printed("http_reqs", stdout) + _printed("dropped_iterations", stdout) == 40, stdout
    assert "verdict:" in stdout, stdout  # and the stage table
    assert list((tmp_path / "tmp").iterdir()) == []  # no half-written fallback left


@pytest.mark.timeout(120)
def test_a_run_folder_gone_mid_run_is_written_elsewhere_and_said_so(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "r"
    with answering(200, 0.0) as url:
        proc = _cli(tmp_path, url, out)
        deadline = time.monotonic() + 60
        while (
            not (out / "run.ndjson").exists() or b'"tick"' not in (out / "run.ndjson").read_bytes()
        ):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        out.rename(tmp_path / "moved")
        out.write_text("not a folder")  # a clean-up job, another run's --out …
        stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 103, stderr
    line = _one_line(stderr)
    (elsewhere,) = (tmp_path / "tmp").iterdir()
    assert f"{out}: exists and is not a folder" in line and str(elsewhere) in line, line
    metrics = json.loads((elsewhere / "summary.json").read_text())["metrics"]
    # Every arrival of the plan is in the figures: started (one request each) or, on a machine
    # too busy to reach it within MAX_LATE (END_LATE after the end), dropped and counted.
    sent = metrics["http_reqs"]["count"]
    assert metrics["iterations"]["count"] == sent
    assert sent + metrics.get("dropped_iterations", {}).get("count", 0) == 40, metrics
    assert f"run folder: {elsewhere}" in stdout, stdout
    assert (elsewhere / "report.html").stat().st_size > 0
