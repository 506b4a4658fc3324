"""A reference server whose ledger or users database cannot be set up (disk full, an I/O
error) says so in one line naming the database, for ``scfleet serve`` and for the embedded
server of ``scfleet run`` — not an ``sqlite3.OperationalError`` traceback.

Found with ``scfleet serve --data-dir`` on a 100 KB tmpfs: "sqlite3.OperationalError: database
or disk is full" with a traceback, exit 1; ``scfleet run`` with the run folder there said only
"embedded reference server exited with code 1: sqlite3.OperationalError: disk I/O error"
(which file?). Here the full disk is a per-file size limit (``RLIMIT_FSIZE``, no root needed).
"""

from __future__ import annotations

import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from small_run import SMALL_UPLOAD

SCENARIO = SMALL_UPLOAD + "chunk_bytes = 1600\n"


def _small_files() -> None:  # SQLite's 32 KB -shm cannot be made: "disk I/O error"
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


#: ``scfleet(...)``: the conftest fixture running the real CLI
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.timeout(120)
def test_serve_on_a_full_disk_is_one_line_naming_the_ledger(tmp_path: Path, scfleet: Cli) -> None:
    proc = scfleet(
        "serve", "--data-dir", str(tmp_path / "data"), timeout=90, preexec_fn=_small_files
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode not in (0, 1), proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"scfleet: {tmp_path / 'data' / 'ledger.sqlite'}: cannot open"), line


@pytest.mark.timeout(120)
def test_the_embedded_server_on_a_full_disk_names_its_ledger(tmp_path: Path, scfleet: Cli) -> None:
    (tmp_path / "up.toml").write_text(SCENARIO)
    out = tmp_path / "r"
    args = ["run", str(tmp_path / "up.toml"), "--out", str(out), "--workers", "1", "--quiet"]
    proc = scfleet(*args, timeout=90, preexec_fn=_small_files)
    assert proc.returncode == 103, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "embedded reference server exited" in line, line
    assert f"{out / 'server' / 'ledger.sqlite'}: cannot open" in line, line
