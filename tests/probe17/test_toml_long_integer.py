"""An integer longer than Python's 4,300-digit limit for ``int(str)`` — in the scenario file,
a ``${VAR}`` read as TOML, a ``--set`` value or the board registry — is one line naming the
file (and key), exit 104, not a ``ValueError`` traceback.

Found by probe17 with ``-e R=<5,000 nines>`` and ``rate = "${R}"``: "ValueError: Exceeds the
limit (4300 digits) for integer string conversion" with a traceback, exit 1 (``tomllib``
raises it as a plain ``ValueError``, not a ``TOMLDecodeError``); the same from the file itself
and from ``--set``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from small_run import SMALL_UPLOAD

Cli = Callable[..., subprocess.CompletedProcess[str]]
LONG = "9" * 5000


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 104, proc.stderr[-2000:]
    (line,) = proc.stderr.splitlines()
    assert len(line) < 400, line
    return line


@pytest.mark.parametrize("where", ["file", "env", "set"])
def test_a_long_integer_in_the_scenario_is_one_line(
    tmp_path: Path, scfleet: Cli, where: str
) -> None:
    path = tmp_path / "up.toml"
    args: list[str] = []
    if where == "file":
        path.write_text(SMALL_UPLOAD.replace("rate = 5", f"rate = {LONG}"))
    elif where == "env":
        path.write_text(SMALL_UPLOAD.replace("rate = 5", 'rate = "${R}"'))
        args = ["-e", f"R={LONG}"]
    else:
        path.write_text(SMALL_UPLOAD)
        args = ["--set", f"scenarios.up.rate={LONG}"]
    line = _one_line(scfleet("inspect", str(path), *args, timeout=60))
    assert str(path) in line, line
    if where != "file":
        assert "scenarios.up.rate" in line, line


def test_a_long_integer_in_the_board_registry_is_one_line(tmp_path: Path, scfleet: Cli) -> None:
    (tmp_path / "boards.toml").write_text(f'[[board]]\nport = "socket://x:1"\nbaud = {LONG}\n')
    path = tmp_path / "up.toml"
    path.write_text(SMALL_UPLOAD + '[boards]\nregistry = "boards.toml"\n')
    line = _one_line(scfleet("inspect", str(path), timeout=60))
    assert str(tmp_path / "boards.toml") in line, line
