"""The LittleFS image mounts with littlefs-python using MicroPython's parameters."""

from __future__ import annotations

import pytest
from littlefs import LittleFS, LittleFSError, UserContext

from hw_bridge import fsimage

VFS_SIZE = 0x200000  # 4 MB board: 0x200000 to the end of flash


def test_image_mounts_with_micropython_parameters_and_holds_the_files() -> None:
    files = {
        "/main.py": b"import scfw\n",
        "/lib/scfw/__init__.py": b"X = 1\n" * 500,
        "/c.json": b"{}",
    }
    image = fsimage.build_image(files, size=VFS_SIZE)
    assert len(image) == VFS_SIZE
    fs = LittleFS(
        context=UserContext(buffer=bytearray(image)),
        mount=False,
        block_size=4096,
        block_count=VFS_SIZE // 4096,
        read_size=32,
        prog_size=32,
        lookahead_size=32,
    )
    fs.mount()
    with fs.open("lib/scfw/__init__.py", "rb") as fh:
        assert fh.read() == files["/lib/scfw/__init__.py"]
    assert sorted(fs.listdir("/")) == ["c.json", "lib", "main.py"]
    assert fs.fs_stat().block_size == 4096
    assert fs.block_count == 512
    fs.unmount()
    assert fsimage.read_image(image) == files


def test_wrong_block_count_does_not_mount() -> None:
    image = fsimage.build_image({"/a": b"1"}, size=VFS_SIZE)
    with pytest.raises(fsimage.FsImageError):
        fsimage.read_image(image, block_count=256)
    fs = LittleFS(
        context=UserContext(buffer=bytearray(image)),
        mount=False,
        block_size=4096,
        block_count=1024,
        read_size=32,
        prog_size=32,
    )
    with pytest.raises(LittleFSError):
        fs.mount()


def test_files_that_do_not_fit_are_an_error() -> None:
    with pytest.raises(fsimage.FsImageError):
        fsimage.build_image({"/big": b"\0" * 40_000}, size=8 * 4096)


def test_bad_paths_are_rejected() -> None:
    with pytest.raises(fsimage.FsImageError):
        fsimage.build_image({"/../x": b""}, size=VFS_SIZE)
