"""LittleFS v2 images that MicroPython on ESP32 mounts as its root filesystem.

MicroPython's ``vfs.VfsLfs2`` on ESP32 mounts the vfs partition with block size 4096 (the flash
sector), read/prog size 32, lookahead 32 and block count = partition size / 4096; a mismatch in
block size or count fails the mount, and a failed mount on a non-blank partition makes the board
boot-loop. So images are built for exactly the partition they land in. The on-disk version is
pinned to 2.0, which every littlefs v2 release (and so every MicroPython >= 1.22) reads; newer
littlefs would otherwise write 2.1 that older firmware refuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

BLOCK_SIZE = 4096
READ_SIZE = 32
PROG_SIZE = 32
LOOKAHEAD_SIZE = 32
BLOCK_CYCLES = 100
DISK_VERSION = 0x0002_0000


class FsImageError(Exception):
    """The image cannot be built (files do not fit) or does not mount."""


def _config(block_count: int) -> dict[str, Any]:
    return {
        "block_size": BLOCK_SIZE,
        "block_count": block_count,
        "read_size": READ_SIZE,
        "prog_size": PROG_SIZE,
        "lookahead_size": LOOKAHEAD_SIZE,
        "block_cycles": BLOCK_CYCLES,
        "disk_version": DISK_VERSION,
    }


def _norm(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise FsImageError(f"invalid board path {path!r}")
    return "/".join(parts)


def build_image(files: Mapping[str, bytes], *, size: int) -> bytes:
    """A formatted LittleFS of ``size`` bytes holding ``files`` (board path -> content)."""
    from littlefs import LittleFS, LittleFSError

    if size <= 0 or size % BLOCK_SIZE:
        raise FsImageError(f"vfs size {size:#x} is not a positive multiple of {BLOCK_SIZE}")
    fs = LittleFS(mount=False, **_config(size // BLOCK_SIZE))
    try:
        fs.format()
        fs.mount()
        for path, data in sorted(files.items()):
            rel = _norm(path)
            parent = ""
            for part in rel.split("/")[:-1]:
                parent = f"{parent}/{part}" if parent else part
                with contextlib.suppress(FileExistsError):
                    fs.mkdir(parent)
            with fs.open(rel, "wb") as fh:
                fh.write(data)
        fs.unmount()
    except LittleFSError as exc:
        raise FsImageError(f"files do not fit a {size // 1024} KiB LittleFS ({exc})") from exc
    return bytes(fs.context.buffer)


def read_image(image: bytes, *, block_count: int | None = None) -> dict[str, bytes]:
    """Mount an image the way MicroPython does and return every file by absolute path."""
    from littlefs import LittleFS, LittleFSError, UserContext

    count = block_count if block_count is not None else len(image) // BLOCK_SIZE
    if len(image) < count * BLOCK_SIZE:
        raise FsImageError(f"image holds {len(image)} bytes, {count} blocks need more")
    ctx = UserContext(buffer=bytearray(image[: count * BLOCK_SIZE]))
    fs = LittleFS(context=ctx, mount=False, **_config(count))
    try:
        fs.mount()
    except LittleFSError as exc:
        raise FsImageError(
            f"LittleFS does not mount with MicroPython's parameters ({exc})"
        ) from exc
    out: dict[str, bytes] = {}
    try:
        for root, _dirs, names in fs.walk("/"):
            for name in names:
                rel = f"{root.rstrip('/')}/{name}".lstrip("/")
                with fs.open(rel, "rb") as fh:
                    out["/" + rel] = fh.read()
    finally:
        fs.unmount()
    return out
