"""firmware/ type-checks against MicroPython's ESP32 API (scripts/test.sh runs the same check),
and that check fails on a call the board does not have."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUBS = ROOT / ".venv" / "mpy-stubs-1.27.0.post1"  # installed by scripts/test.sh


def _mypy(fw: Path) -> subprocess.CompletedProcess[str]:
    if not STUBS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{STUBS} missing: scripts/test.sh installs it")
        pytest.skip(f"{STUBS} missing: run scripts/test.sh once")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy-board.ini"]
        + ["--custom-typeshed-dir", str(STUBS), "scfw", "main.py"],
        cwd=fw,
        env={**os.environ, "MYPYPATH": str(STUBS)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_board_api_check_passes_and_catches_a_missing_call(tmp_path: Path) -> None:
    fw = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", fw, ignore=shutil.ignore_patterns("__pycache__"))
    ok = _mypy(fw)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    hal = fw / "scfw" / "hal_esp32.py"
    text = hal.read_text()
    assert "        return self._clock()\n" in text
    hal.write_text(
        text.replace("        return self._clock()\n", "        return time.monotonic()\n")
    )
    bad = _mypy(fw)  # CPython's time.monotonic does not exist in MicroPython
    assert bad.returncode == 1 and 'no attribute "monotonic"' in bad.stdout, bad.stdout
