"""ESP firmware images and flash layouts: is this ``.bin`` for this chip, and where do things go.

An ESP image starts with magic 0xE9, a segment count, flash mode, size/frequency and the entry
point; non-ESP8266 chips follow with a 16-byte extended header whose u16 at byte 4 is the chip
ID (ESP32 0, S2 2, C3 5, S3 9, C2 12, C6 13, H2 16, P4 18 — esptool's ``IMAGE_CHIP_ID``).
MicroPython's official ``.bin`` is bootloader + partition table + app, written at the chip's
bootloader offset (0x1000 on ESP32/S2, 0x0 on S3/C3/C6/…, 0x2000 on P4).

The filesystem ("vfs") location: MicroPython before 1.26 lists a ``vfs`` data partition in its
table; from 1.26 on the table ends with the app and the vfs is created at boot from the end of
the last partition to the end of the detected flash. We read the table shipped inside the
``.bin`` (at flash 0x8000) and use the listed ``vfs``/``ffat`` partition when present, else the
end of the last partition; without a readable table we fall back to 0x200000, the 4 MB boards'
layout (app 0x10000 + 0x1F0000).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

ESP_IMAGE_MAGIC = 0xE9
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_MAGIC = b"\xaa\x50"
PARTITION_MD5_MAGIC = b"\xeb\xeb"
DEFAULT_VFS_OFFSET = 0x200000
SECTOR = 0x1000


class ImageError(Exception):
    """The file is not a usable ESP image for the target; the message says why."""


@dataclass(frozen=True)
class ChipLayout:
    name: str  # as esptool's CHIP_NAME
    image_chip_id: int
    bootloader_offset: int


CHIPS: dict[str, ChipLayout] = {
    c.name: c
    for c in (
        ChipLayout("ESP32", 0, 0x1000),
        ChipLayout("ESP32-S2", 2, 0x1000),
        ChipLayout("ESP32-C3", 5, 0x0),
        ChipLayout("ESP32-S3", 9, 0x0),
        ChipLayout("ESP32-C2", 12, 0x0),
        ChipLayout("ESP32-C6", 13, 0x0),
        ChipLayout("ESP32-H2", 16, 0x0),
        ChipLayout("ESP32-P4", 18, 0x2000),
    )
}
_BY_ID = {c.image_chip_id: c for c in CHIPS.values()}


@dataclass(frozen=True)
class ImageHeader:
    segments: int
    flash_mode: int
    flash_size_freq: int
    entry: int
    chip_id: int
    min_rev: int

    @property
    def chip(self) -> ChipLayout | None:
        return _BY_ID.get(self.chip_id)


def parse_header(data: bytes, *, name: str = "image") -> ImageHeader:
    """Read the common and extended header; :class:`ImageError` if it is not an ESP image."""
    if len(data) < 24:
        raise ImageError(f"{name}: too short to be an ESP image ({len(data)} bytes)")
    magic, segments, mode, size_freq, entry = struct.unpack_from("<BBBBI", data)
    if magic != ESP_IMAGE_MAGIC:
        raise ImageError(f"{name}: not an ESP image (first byte {magic:#04x}, expected 0xe9)")
    if not 1 <= segments <= 16:
        raise ImageError(f"{name}: implausible segment count {segments}")
    chip_id, min_rev = struct.unpack_from("<HB", data, 12)
    return ImageHeader(segments, mode, size_freq, entry, chip_id, min_rev)


def chip_of_image(data: bytes, *, name: str = "image") -> ChipLayout:
    header = parse_header(data, name=name)
    chip = header.chip
    if chip is None:
        raise ImageError(f"{name}: unknown chip id {header.chip_id} in the image header")
    return chip


def check_image_for_chip(data: bytes, chip_name: str, *, name: str = "image") -> ImageHeader:
    """Raise :class:`ImageError` unless ``data`` is an ESP image built for ``chip_name``."""
    header = parse_header(data, name=name)
    want = CHIPS.get(chip_name)
    if want is None:
        raise ImageError(f"{name}: chip {chip_name} is not supported")
    if header.chip_id != want.image_chip_id:
        got = header.chip.name if header.chip else f"chip id {header.chip_id}"
        raise ImageError(f"{name}: built for {got}, but the board is {chip_name}")
    return header


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


def parse_partition_table(table: bytes) -> list[Partition]:
    """Entries of an ESP-IDF partition table (32 bytes each, ``AA 50`` magic, MD5 row last)."""
    out: list[Partition] = []
    for pos in range(0, len(table) - 31, 32):
        row = table[pos : pos + 32]
        magic = row[:2]
        if magic == PARTITION_MAGIC:
            ptype, subtype, offset, size = struct.unpack_from("<BBII", row, 2)
            label = row[12:28].split(b"\x00", 1)[0].decode("ascii", "replace")
            out.append(Partition(label, ptype, subtype, offset, size))
        elif magic == PARTITION_MD5_MAGIC or magic == b"\xff\xff":
            break
        else:
            return []
    return out


def vfs_region(partitions: Sequence[Partition], flash_size: int) -> tuple[int, int]:
    """(offset, size) of MicroPython's filesystem for this table and flash size."""
    for p in partitions:
        if p.type == 1 and p.label in ("vfs", "ffat"):
            return p.offset, p.size
    if partitions:
        end = max(p.end for p in partitions)
        end = -(-end // SECTOR) * SECTOR
        if end < flash_size:
            return end, flash_size - end
    return DEFAULT_VFS_OFFSET, flash_size - DEFAULT_VFS_OFFSET


def partitions_in_firmware(firmware: bytes, chip: ChipLayout) -> list[Partition]:
    """The partition table embedded in a MicroPython ``.bin`` written at the bootloader offset."""
    start = PARTITION_TABLE_OFFSET - chip.bootloader_offset
    return parse_partition_table(firmware[start : start + 0xC00])


def vfs_offset_from_flash(flash: bytes | bytearray) -> int:
    """Where a board whose flash holds MicroPython looks for its filesystem."""
    table = bytes(flash[PARTITION_TABLE_OFFSET : PARTITION_TABLE_OFFSET + 0xC00])
    return vfs_region(parse_partition_table(table), len(flash))[0]


def make_test_image(
    size: int, *, chip: str = "ESP32", seed: int = 1, app_partition_end: int | None = None
) -> bytes:
    """A made-up firmware ``.bin`` shaped like MicroPython's, for tests and benchmarks.

    Bootloader header (valid ESP image for ``chip``) at the start, a partition table at flash
    0x8000 whose last partition ends at ``app_partition_end`` (default 0x200000), an app image
    header at flash 0x10000, and filler that compresses roughly like real firmware (~2:1).
    """
    import random

    layout = CHIPS[chip]
    rng = random.Random(seed)
    out = bytearray()
    chunk_words = [rng.randbytes(4) for _ in range(64)]
    while len(out) < size:  # half random, half repetitive: deflate gets ~50 %
        out += rng.randbytes(512)
        out += b"".join(rng.choice(chunk_words) for _ in range(128))
    del out[size:]

    def header(entry: int) -> bytes:
        common = struct.pack("<BBBBI", ESP_IMAGE_MAGIC, 1, 2, 0x20, entry)
        ext = struct.pack("<BBBBHBHH4sB", 0xEE, 0, 0, 0, layout.image_chip_id, 0, 0, 0xFFFF, b"", 0)
        seg = struct.pack("<II", 0x3FFF0000, 16) + bytes(16)
        return common + ext + seg

    out[0 : len(header(0))] = header(0x40080000)
    table_at = PARTITION_TABLE_OFFSET - layout.bootloader_offset
    app_at = 0x10000 - layout.bootloader_offset
    end = app_partition_end if app_partition_end is not None else DEFAULT_VFS_OFFSET
    if size > app_at + 64:
        rows = [
            (b"nvs", 1, 2, 0x9000, 0x6000),
            (b"phy_init", 1, 1, 0xF000, 0x1000),
            (b"factory", 0, 0, 0x10000, end - 0x10000),
        ]
        table = b"".join(
            PARTITION_MAGIC + struct.pack("<BBII16sI", t, s, o, n, label, 0)
            for label, t, s, o, n in rows
        )
        table += PARTITION_MD5_MAGIC + b"\xff" * 14 + bytes(16)
        out[table_at : table_at + 0xC00] = table.ljust(0xC00, b"\xff")
        out[app_at : app_at + len(header(0))] = header(0x400D0000)
        banner = TEST_IMAGE_BANNER.encode() + b"\0"  # a real image holds its REPL banner
        if size > app_at + 0x1000 + len(banner):
            out[app_at + 0x1000 : app_at + 0x1000 + len(banner)] = banner
    return bytes(out)


TEST_IMAGE_BANNER = "MicroPython v1.26.0 on 2025-08-09; Generic ESP32 module with ESP32"
