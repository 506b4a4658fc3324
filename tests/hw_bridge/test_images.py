"""Image checks per chip and the vfs location from the shipped partition table."""

from __future__ import annotations

import struct

import pytest

from hw_bridge import images


def test_test_image_is_an_esp32_image_with_a_table() -> None:
    data = images.make_test_image(300_000)
    assert images.chip_of_image(data).name == "ESP32"
    images.check_image_for_chip(data, "ESP32")
    parts = images.partitions_in_firmware(data, images.CHIPS["ESP32"])
    assert [p.label for p in parts] == ["nvs", "phy_init", "factory"]
    assert images.vfs_region(parts, 4 << 20) == (0x200000, 0x200000)
    assert images.vfs_region(parts, 8 << 20) == (0x200000, 0x600000)  # >= 1.26: to flash end


def test_wrong_chip_and_not_an_image() -> None:
    s3 = images.make_test_image(4096, chip="ESP32-S3")
    with pytest.raises(images.ImageError, match="built for ESP32-S3, but the board is ESP32"):
        images.check_image_for_chip(s3, "ESP32")
    with pytest.raises(images.ImageError, match="not an ESP image"):
        images.check_image_for_chip(b"\x00" * 64, "ESP32")
    assert images.CHIPS["ESP32-S3"].bootloader_offset == 0
    assert images.CHIPS["ESP32-C3"].image_chip_id == 5


def test_legacy_vfs_partition_wins_and_missing_table_falls_back() -> None:
    row = images.PARTITION_MAGIC + struct.pack("<BBII16sI", 1, 0x81, 0x200000, 0x180000, b"vfs", 0)
    parts = images.parse_partition_table(row + b"\xff" * 32)
    assert images.vfs_region(parts, 4 << 20) == (0x200000, 0x180000)
    assert images.vfs_region([], 4 << 20) == (images.DEFAULT_VFS_OFFSET, 0x200000)
    assert images.vfs_offset_from_flash(bytearray(b"\xff" * (4 << 20))) == 0x200000
