"""``scfleet serve`` checks what it is told before it starts. Found by probe19:
``--max-upload-bytes`` had no upper bound while the ``[server]`` table capped it at 1 GiB
(and the table took 1 where the server wanted 2, so such a run failed as the server
started); ``--parent-pid`` of a process that is not the server's parent exited 0 without a
word (the watchdog watches only the parent: it saw "parent gone" and stopped at once).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scfleet import cli
from scfleet_core.errors import EXIT_INVALID_CONFIG
from scfleet_core.limits import MAX_UPLOAD_BYTES, MIN_UPLOAD_BYTES
from simulator.config import parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(20)  # before: the server started and served
@pytest.mark.parametrize("value", [str(MAX_UPLOAD_BYTES + 1), str(2**40), "1"])
def test_max_upload_bytes_has_the_tables_bounds(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", "--data-dir", str(tmp_path / "d"), "--max-upload-bytes", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--max-upload-bytes" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("value", [MIN_UPLOAD_BYTES - 1, MAX_UPLOAD_BYTES + 1])
def test_the_server_table_refuses_what_the_server_would(value: int) -> None:
    with pytest.raises(Exception, match="max_upload_bytes"):
        parse_config(
            {
                "scenarios": {
                    "up": {
                        "executor": "constant-vus",
                        "vus": 1,
                        "duration": "1s",
                        "device": {"kind": "iot_upload"},
                    }
                },
                "server": {"max_upload_bytes": value},
            }
        )


@pytest.mark.timeout(20)  # before: exit 0, nothing said
@pytest.mark.parametrize(
    ("pid", "problem"),
    [
        (None, "not this server's parent"),  # a sleep: alive, and not the server's parent
        (2**22 + 7, "no such process"),  # above Linux's pid_max
    ],
)
def test_a_parent_pid_that_is_not_the_parent_is_an_error(
    pid: int | None, problem: str, tmp_path: Path
) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        _refused(other.pid if pid is None else pid, problem, tmp_path)
    finally:
        other.kill()
        other.wait()


def _refused(pid: int, problem: str, tmp_path: Path) -> None:
    script = (
        "import sys; from scfleet.cli import main; "
        f"sys.exit(main(['serve', '--data-dir', {str(tmp_path / 'd')!r}, '--parent-pid', "
        f"'{pid}']))"
    )
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=15
    )
    assert res.returncode == EXIT_INVALID_CONFIG, res
    assert res.stderr.startswith(f"scfleet: --parent-pid: {pid}: {problem}"), res.stderr
    assert len(res.stderr.splitlines()) == 1 and "READY" not in res.stdout


@pytest.mark.timeout(20)
def test_our_parent_is_taken(tmp_path: Path) -> None:
    from reference_server.config import check_parent

    check_parent(os.getppid())  # no error
