"""``--summary-export FIFO`` where no process reads the FIFO: one line naming it and exit 103,
with the run folder whole; with a reader, the reader gets the whole summary.

Found by hand: the export's open blocked until a reader came, for ever, and with SIGINT and
SIGTERM deferred while results are written the run could not be stopped: ``timeout 40
scfleet run ... --summary-export fifo`` was still there 14 minutes later, past its SIGTERM
and a second one (only SIGKILL, or a reader, ended it).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from answering import answering
from small_run import SMALL_UPLOAD

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _run(tmp_path: Path, scfleet: Cli, export: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "up.toml").write_text(SMALL_UPLOAD)
    with answering(200, 0.0) as url:
        try:
            return scfleet(
                "run", str(tmp_path / "up.toml"), "--target", url, "--out", str(tmp_path / "r"),
                "--workers", "1", "--quiet", "--summary-export", str(export), timeout=60,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail("scfleet run hung on the FIFO's open (killed after 60 s)")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_fifo_no_one_reads_fails_the_export_at_once(tmp_path: Path, scfleet: Cli) -> None:
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    proc = _run(tmp_path, scfleet, fifo)
    assert proc.returncode == 103, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line == f"scfleet: --summary-export {fifo}: a FIFO no process reads", line
    assert (tmp_path / "r" / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_fifo_with_a_reader_gets_the_whole_summary(tmp_path: Path, scfleet: Cli) -> None:
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:  # waits for the writer
            got.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = _run(tmp_path, scfleet, fifo)
    if reader.is_alive():  # never opened: let the reader's open return
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    reader.join(10)
    assert proc.returncode == 0, proc.stderr
    assert got and got[0] == (tmp_path / "r" / "summary.json").read_bytes()
    assert "http_reqs" in json.loads(got[0])["metrics"]
