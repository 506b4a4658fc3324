"""mpy-cross for the board's MicroPython version (hw_bridge.mpyc)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw_bridge import images, mpyc
from scfleet_core.errors import ConfigError

SRC = Path(__file__).resolve().parents[2] / "firmware" / "scfw" / "proto.py"


def test_version_from_banner_and_image() -> None:
    assert mpyc.parse_version("MicroPython v1.27.0 on 2025-12-10") == (1, 27, 0)
    assert mpyc.parse_version("1.22") == (1, 22, 0)
    assert mpyc.version_of_image(images.make_test_image(200_000)) == (1, 26, 0)
    assert mpyc.version_of_image(b"\xe9" + bytes(1000)) is None


def test_compilers_per_version() -> None:
    new = mpyc.compile_source(SRC, "1.27.0", "scfw/proto.py")
    old = mpyc.compile_source(SRC, (1, 22, 2), "scfw/proto.py")
    assert new[:2] == old[:2] == b"M\x06"  # bytecode format 6
    assert "archive" in str(mpyc.compiler_for((1, 22, 0)))
    assert "archive" not in str(mpyc.compiler_for((1, 26, 0)))
    with pytest.raises(ConfigError, match="older than the firmware supports"):
        mpyc.compiler_for((1, 21, 0))
    with pytest.raises(ConfigError, match="--py"):
        mpyc.compiler_for((1, 30, 0))


def test_ship_needs_a_version_unless_py() -> None:
    files = {"/main.py": b"import scfw\n", "/scfw/proto.py": SRC.read_bytes()}
    assert mpyc.ship(files, None, py=True) == files
    with pytest.raises(ConfigError, match="--micropython"):
        mpyc.ship(files, None)
    shipped = mpyc.ship(files, (1, 27, 0))
    assert set(shipped) == {"/main.py", "/scfw/proto.mpy"}
    assert mpyc.other_form("/scfw/proto.mpy") == "/scfw/proto.py"
