"""The MicroPython test firmware, as files to put on a board.

CPython only: `app_files()` lists what goes onto a board (board path -> source file), for flashing
(a LittleFS image) and for raw-REPL deploys. The app itself lives in `firmware.scfw`.
"""

from __future__ import annotations

from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parent
PACKAGE = "scfw"
HOST_ONLY = frozenset({"hal_host.py"})  # CPython's HAL: never imported on a board


def app_files() -> list[tuple[str, Path]]:
    """(board path, source) for main.py and scfw/*.py but the host-only HAL, in a stable order."""
    files = [("main.py", FIRMWARE_DIR / "main.py")]
    for src in sorted((FIRMWARE_DIR / PACKAGE).glob("*.py")):
        if src.name not in HOST_ONLY:
            files.append((f"{PACKAGE}/{src.name}", src))
    return files
