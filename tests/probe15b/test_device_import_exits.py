"""A Python device file whose import calls ``sys.exit`` (a script's habit) or raises a bare
``BaseException`` is bad user code like any import that raises: one line naming the file,
exit 107 (k6's ScriptException; 104 until tests/edge18/test_script_error_exit.py), before the
target is contacted. Before, ``sys.exit(3)`` at import ended
``scfleet run`` with exit 3 and not a word, and ``raise BaseException`` with a traceback."""

from __future__ import annotations

import pathlib

import pytest

from scfleet.cli import main
from scfleet_core.errors import EXIT_SCRIPT

REFUSED = "http://127.0.0.1:9"
BASE = """
[scenarios.a]
executor = "constant-arrival-rate"
rate = 10
duration = "2s"
pre_allocated_devices = 2
[scenarios.a.device]
kind = "python:dev.py:X"
"""
BODIES = {
    "sys-exit": "import sys\nsys.exit(3)\n",
    "sys-exit-text": "raise SystemExit('usage: dev.py PORT')\n",
    "base-exception": "raise BaseException('boom')\n",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["run", "inspect"])
@pytest.mark.parametrize("body", sorted(BODIES))
def test_a_device_import_that_exits_is_a_script_error(
    body: str, command: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dev.py").write_text(BODIES[body])
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(BASE)
    out = tmp_path / "run"
    argv = [command, str(cfg), "--target", REFUSED]
    if command == "run":
        argv += ["--out", str(out), "--quiet", "--workers", "1"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else -1
    except BaseException as exc:  # noqa: BLE001 - what main let through is the failure
        pytest.fail(f"main raised {type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    lines = err.strip("\n").split("\n")
    assert code == EXIT_SCRIPT, f"exit {code}: {err[-600:]}"
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "dev.py" in lines[0] and "importing it raised" in lines[0], lines[0]
    assert not out.exists()
