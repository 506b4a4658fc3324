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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from small_run import SMALL_UPLOAD

SCENARIO = SMALL_UPLOAD + "chunk_bytes = 1600\n"


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
def test_an_empty_folder_that_cannot_be_written_is_refused(
    tmp_path: Path, target: str, scfleet: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    (tmp_path / "up.toml").write_text(SCENARIO)
    flags = [] if target == "embedded" else ["--target", "http://127.0.0.1:9"]
    with _read_only_empty_folder(tmp_path / "ro") as out:
        args = ["run", str(tmp_path / "up.toml"), "--out", str(out), "--workers", "1", "--quiet"]
        proc = scfleet(*args, *flags, timeout=90)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 104, proc.stderr
    assert proc.stderr.startswith(f"scfleet: --out: cannot write in {out}: "), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
