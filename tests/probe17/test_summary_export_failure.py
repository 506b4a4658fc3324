"""``--summary-export FILE`` that cannot be written fails the run's exit code (103, as an
unwritable run folder does) with one line naming it; one that can be known unwritable before
the run (a symlink loop, a folder no file can be made in) is refused before anything starts.

Found by probe17: ``--summary-export`` to a symlink loop, ``/proc/self/x`` or ``/dev/full``
ran the whole run, printed "scfleet: --summary-export …: Too many levels of symbolic links"
(or No such file or directory, No space left on device) and exited 0: a CI job went on
without the file it asked for.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from answering import answering
from small_run import SMALL_UPLOAD

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("where", ["loop", "proc"])
def test_an_export_known_unwritable_is_refused_before_the_run(
    tmp_path: Path, scfleet: Cli, free_port: int, where: str
) -> None:
    (tmp_path / "up.toml").write_text(SMALL_UPLOAD)
    if where == "loop":
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        export = str(tmp_path / "a")
    else:
        export = "/proc/self/summary.json"
    proc = scfleet(
        "run", str(tmp_path / "up.toml"), "--target", f"http://127.0.0.1:{free_port}",
        "--out", str(tmp_path / "r"), "--summary-export", export, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 104, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"scfleet: --summary-export {export}: "), line
    assert not (tmp_path / "r").exists()


@pytest.mark.timeout(120)
def test_an_export_that_fails_at_the_end_fails_the_exit_code(tmp_path: Path, scfleet: Cli) -> None:
    (tmp_path / "up.toml").write_text(SMALL_UPLOAD)
    with answering(200, 0.0) as url:
        proc = scfleet(
            "run", str(tmp_path / "up.toml"), "--target", url, "--out", str(tmp_path / "r"),
            "--workers", "1", "--quiet", "--summary-export", "/dev/full", timeout=90,
        )  # fmt: skip
    assert proc.returncode == 103, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line == "scfleet: --summary-export /dev/full: No space left on device", line
    assert "http_reqs" in proc.stdout
    assert (tmp_path / "r" / "summary.json").exists()
