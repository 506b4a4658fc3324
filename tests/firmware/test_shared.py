"""The firmware's unit cases, run under CPython and under real MicroPython (WebAssembly, Node.js).

The same `case_*` functions (shared_cases.py) run on both, so code that only CPython accepts fails
here before it reaches a board.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PKG = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

sys.path.insert(0, str(HERE))
import shared_cases  # noqa: E402

CASES = shared_cases.cases()


def test_cases_exist() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("name", CASES)
def test_cpython(name: str) -> None:
    r = getattr(shared_cases, name)()
    if asyncio.iscoroutine(r):
        asyncio.run(asyncio.wait_for(r, 20))


def _node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PKG / "micropython.mjs").exists():
        return "node_modules missing: run `npm ci` at the repository root"
    return None


@pytest.fixture(scope="module")
def micropython_run() -> dict[str, str]:
    """Runs every case once under MicroPython; -> {case: "PASS" | failure text}."""
    why = _node_missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"MicroPython tests cannot run in CI: {why}")
        pytest.skip(why)
    proc = subprocess.run(
        [
            "node",
            str(HERE / "mpy_run.mjs"),
            str(HERE / "mpy_main.py"),
            str(HERE / "shared_cases.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(PASS|FAIL) (case_\w+)(?::\s*(.*))?$", line)
        if m:
            out[m.group(2)] = "PASS" if m.group(1) == "PASS" else (m.group(3) or "failed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out, f"no case ran under MicroPython:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    out["__stdout__"] = proc.stdout
    return out


@pytest.mark.slow
@pytest.mark.node
def test_micropython_is_real(micropython_run: dict[str, str]) -> None:
    assert re.search(r"^MicroPython 1\.\d+\.\d+$", micropython_run["__stdout__"], re.M)


@pytest.mark.slow
@pytest.mark.node
@pytest.mark.parametrize("name", CASES)
def test_micropython(name: str, micropython_run: dict[str, str]) -> None:
    assert micropython_run.get(name) == "PASS", micropython_run.get(name, "did not run")


@pytest.mark.node
def test_runner_reports_python_errors(tmp_path: Path) -> None:
    """The Node runner turns a MicroPython exception into a non-zero exit with the traceback."""
    why = _node_missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    bad = tmp_path / "bad.py"
    bad.write_text("from scfw import proto\nprint(proto.VERSION)\nraise ValueError('boom')\n")
    proc = subprocess.run(
        ["node", str(HERE / "mpy_run.mjs"), str(bad)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stdout.strip() == "1"
    assert "ValueError: boom" in proc.stderr


@pytest.mark.node
def test_every_board_file_compiles_under_micropython(tmp_path: Path) -> None:
    """hal_esp32 and main.py cannot run off a board, but they must at least compile there."""
    why = _node_missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    from firmware import app_files

    script = tmp_path / "compile_all.py"
    lines = []
    for board_path, _src in app_files():
        lines.append(f"compile(open('/{board_path}').read(), '{board_path}', 'exec')")
        lines.append(f"print('compiled {board_path}')")
    script.write_text("\n".join(lines) + "\n")
    # main.py is not under scfw/: hand it over as an extra file.
    proc = subprocess.run(
        ["node", str(HERE / "mpy_run.mjs"), str(script), str(ROOT / "firmware" / "main.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("compiled ") == len(app_files())


@pytest.mark.slow
@pytest.mark.node
def test_esp32_hal_under_micropython() -> None:
    """The board HAL with fake machine/network modules and console streams, under MicroPython."""
    why = _node_missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    proc = subprocess.run(
        [
            "node",
            str(HERE / "mpy_run.mjs"),
            str(HERE / "mpy_esp32hal.py"),
            str(HERE / "fakes" / "machine.py"),
            str(HERE / "fakes" / "network.py"),
            str(HERE / "fakes" / "socket.py"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "FAIL" not in proc.stdout, proc.stdout
    parts = ("readline", "burst", "nodelay", "connect_cancelled", "connect_timeout")
    for part in parts + ("connect_failed", "connect_tls", "identity", "fs", "wifi", "i2s"):
        assert f"PASS esp32_{part}" in proc.stdout, proc.stdout
