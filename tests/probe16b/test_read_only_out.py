"""``--out`` naming an existing empty folder that cannot be written is refused before anything
starts, like one that cannot be created: one line naming it, exit 104.

Found with ``--out`` on an empty folder of a read-only mount: ``scfleet run`` accepted it (an
empty folder is a valid run folder), started, and died in an ``OSError: [Errno 30] Read-only
file system: '…/server'`` traceback, exit 1 (a folder it must create there fails at once).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 5
duration = "1s"
pre_allocated_devices = 2
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 1600
"""


@contextlib.contextmanager
def _read_only_empty_folder(path: Path) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:  # permission bits stop anyone but root
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("root without the right to mount a read-only tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("target", ["embedded", "refused"])
@pytest.mark.timeout(120)
def test_an_empty_folder_that_cannot_be_written_is_refused(tmp_path: Path, target: str) -> None:
    (tmp_path / "up.toml").write_text(SCENARIO)
    flags = [] if target == "embedded" else ["--target", "http://127.0.0.1:9"]
    with _read_only_empty_folder(tmp_path / "ro") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "scfleet", "run", str(tmp_path / "up.toml"), "--out", str(out)]
            + ["--workers", "1", "--quiet", *flags],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 104, proc.stderr
    assert proc.stderr.startswith(f"scfleet: --out: cannot write in {out}: "), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
