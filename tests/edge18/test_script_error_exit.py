"""A Python device whose code fails to load — a syntax error, an exception at import, an import of
a module that is not there — ends ``scfleet run`` with k6's exit code for a script that fails
at init: 107 (ScriptException), still one line naming the file and before anything is
contacted. A scenario file that names a file, module or class that is not there stays 104
(InvalidConfig): that is the scenario file's mistake, not the code's.

Found side by side with k6 1.1.0: a script throwing at init, one with a syntax error, one
importing a missing module and one whose ``setup()`` throws each exit 107; scfleet's device
code failing the same ways exited 104, so a CI step telling a broken script (107) from a broken
configuration (104) read them alike.
"""

from __future__ import annotations

import pathlib

import pytest
from k6_side import K6, needs_k6

from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG, EXIT_SCRIPT, ConfigError

REFUSED = "http://127.0.0.1:9"
BASE = """
[scenarios.a]
executor = "per-vu-iterations"
vus = 1
iterations = 1
[scenarios.a.device]
kind = "KIND"
"""
CODE = {
    "raises": ("raise RuntimeError('boom at import')\n", "importing it raised RuntimeError"),
    "syntax": ("class X(:\n", "syntax error at line 1"),
    "missing-import": ("import no_such_module_xyz\n", "no module named 'no_such_module_xyz'"),
    "exits": ("import sys\nsys.exit(3)\n", "importing it raised SystemExit"),
}


def _run(tmp_path: pathlib.Path, kind: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(BASE.replace("KIND", kind))
    out = tmp_path / "run"
    code = main(["run", str(cfg), "--target", REFUSED, "--out", str(out), "--workers", "1"])
    assert not out.exists()
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(CODE))
def test_device_code_that_fails_to_load_exits_107(
    case: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, says = CODE[case]
    (tmp_path / "dev.py").write_text(body)
    code, err = _run(tmp_path, "python:dev.py:X", capsys)
    lines = err.strip("\n").split("\n")
    assert code == EXIT_SCRIPT == 107, err
    assert len(lines) == 1 and "dev.py" in lines[0] and says in lines[0], err


@pytest.mark.parametrize(
    ("kind", "write"),
    [
        ("python:nothere.py:X", False),  # no such file
        ("python:dev.py:Nope", True),  # no such class
        ("python:no_such_pkg_xyz:X", False),  # no such module
    ],
)
def test_a_scenario_file_naming_nothing_stays_104(
    kind: str, write: bool, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if write:
        (tmp_path / "dev.py").write_text("from simulator.userdevice import Device\n")
    code, err = _run(tmp_path, kind, capsys)
    assert code == EXIT_INVALID_CONFIG, err


def test_a_script_error_is_still_a_config_error() -> None:
    """Callers catching ConfigError (the library API, the pytest plugin) still catch it."""
    from scfleet_core.errors import ScriptError

    assert issubclass(ScriptError, ConfigError)


@pytest.mark.slow
@needs_k6
@pytest.mark.parametrize(
    "script",
    [
        "throw new Error('boom at init');\nexport default function () {}\n",
        "export default function ( {\n",
        "import x from './missing.js';\nexport default function () {}\n",
    ],
    ids=["throws", "syntax", "missing-import"],
)
def test_k6_exits_107_for_a_script_that_fails_at_init(script: str, tmp_path: pathlib.Path) -> None:
    import os
    import subprocess

    (tmp_path / "s.js").write_text(script)
    res = subprocess.run(
        [K6 or "k6", "run", "--quiet", "--no-usage-report", str(tmp_path / "s.js")],
        capture_output=True,
        timeout=60,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
        cwd=tmp_path,
    )
    assert res.returncode == 107, res.stderr[-400:]
