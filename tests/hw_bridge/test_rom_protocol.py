"""The loader state machine spoken to directly over socket:// (no esptool): framing, status
formats of ROM and stub, checksum and sequence checks, the SPI flash ID path."""

from __future__ import annotations

import hashlib
import socket
import struct
import zlib
from collections.abc import Iterator

import pytest

from hw_bridge.emulator import rom, slip
from hw_bridge.emulator.server import BoardHandle, start_emulated_boards


class RawHost:
    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("socket://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=3)
        self.dec = slip.SlipDecoder()
        self.pending: list[bytes] = []

    def send(self, op: int, data: bytes = b"", chk: int = 0) -> None:
        self.sock.sendall(slip.encode(struct.pack("<BBHI", 0, op, len(data), chk) + data))

    def frame(self) -> bytes:
        while not self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, "board closed the connection"
            self.pending += self.dec.feed(chunk)
        return self.pending.pop(0)

    def cmd(self, op: int, data: bytes = b"", chk: int = 0) -> tuple[int, bytes]:
        self.send(op, data, chk)
        resp = self.frame()
        direction, rop, size, value = struct.unpack_from("<BBHI", resp)
        assert (direction, rop) == (1, op)
        assert size == len(resp) - 8
        return value, resp[8:]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def board() -> Iterator[BoardHandle]:
    with start_emulated_boards(1) as boards:
        yield boards[0]


@pytest.fixture
def host(board: BoardHandle) -> Iterator[RawHost]:
    h = RawHost(board.url)
    yield h
    h.close()


def data_packet(payload: bytes, seq: int) -> tuple[bytes, int]:
    return struct.pack("<IIII", len(payload), seq, 0, 0) + payload, rom.checksum(payload)


def start_stub(host: RawHost) -> None:
    code = b"\x00" * 64
    assert host.cmd(rom.MEM_BEGIN, struct.pack("<IIII", 64, 1, 0x1800, 0x40080000))[1] == bytes(4)
    pkt, chk = data_packet(code, 0)
    assert host.cmd(rom.MEM_DATA, pkt, chk)[1] == bytes(4)
    host.cmd(rom.MEM_END, struct.pack("<II", 0, 0x40080010))
    assert host.frame() == b"OHAI"


def test_sync_is_answered_eight_times_then_chip_magic(host: RawHost) -> None:
    host.send(rom.SYNC, rom.SYNC_PAYLOAD)
    answers = [host.frame() for _ in range(8)]
    assert all(a[:2] == b"\x01\x08" and a[-4:] == bytes(4) for a in answers)
    assert struct.unpack_from("<I", answers[0], 4)[0] != 0  # ROM, not the stub
    value, status = host.cmd(rom.READ_REG, struct.pack("<I", rom.CHIP_MAGIC_ADDR))
    assert value == 0x00F01D83 and status == bytes(4)


def test_mac_and_crystal_registers(board: BoardHandle, host: RawHost) -> None:
    w1 = host.cmd(rom.READ_REG, struct.pack("<I", rom.EFUSE_BASE + 4))[0]
    w2 = host.cmd(rom.READ_REG, struct.pack("<I", rom.EFUSE_BASE + 8))[0]
    assert struct.pack(">II", w2, w1)[2:8] == board.board.mac
    div = host.cmd(rom.READ_REG, struct.pack("<I", rom.UART0_CLKDIV))[0]
    assert round(115200 * div / 1e6) == 40


def test_flash_id_through_spi_registers(host: RawHost) -> None:
    def wr(addr: int, value: int) -> None:
        assert host.cmd(rom.WRITE_REG, struct.pack("<IIII", addr, value, 0xFFFFFFFF, 0))[
            1
        ] == bytes(4)

    wr(rom.SPI_USR, (1 << 31) | (1 << 28))
    wr(rom.SPI_MISO_DLEN, 23)
    wr(rom.SPI_USR2, (7 << 28) | 0x9F)
    wr(rom.SPI_W0, 0)
    wr(rom.SPI_CMD, rom.SPI_CMD_USR)
    assert host.cmd(rom.READ_REG, struct.pack("<I", rom.SPI_CMD))[0] & rom.SPI_CMD_USR == 0
    flash_id = host.cmd(rom.READ_REG, struct.pack("<I", rom.SPI_W0))[0]
    assert flash_id >> 16 == 0x16  # 4 MB


def test_rom_rejects_bad_checksum_and_bad_sequence(board: BoardHandle, host: RawHost) -> None:
    assert host.cmd(rom.FLASH_BEGIN, struct.pack("<IIII", 0x1000, 4, 0x400, 0x10000))[1] == bytes(4)
    pkt, chk = data_packet(b"\x11" * 0x400, 0)
    assert host.cmd(rom.FLASH_DATA, pkt, chk ^ 0x5A)[1] == b"\x01\x07\x00\x00"  # checksum error
    pkt1, chk1 = data_packet(b"\x11" * 0x400, 1)
    assert host.cmd(rom.FLASH_DATA, pkt1, chk1)[1] == b"\x01\x05\x00\x00"  # seq 1 before 0
    assert host.cmd(rom.FLASH_DATA, pkt, chk)[1] == bytes(4)
    assert board.call(lambda b: bytes(b.flash[0x10000:0x10400])) == b"\x11" * 0x400
    # The ROM's MD5 is 32 ASCII hex digits.
    _, body = host.cmd(rom.SPI_FLASH_MD5, struct.pack("<IIII", 0x10000, 0x400, 0, 0))
    assert body[:32] == hashlib.md5(b"\x11" * 0x400).hexdigest().encode()
    # Stub-only commands are invalid in the ROM.
    assert host.cmd(rom.ERASE_FLASH)[1] == b"\x01\x05\x00\x00"


def test_stub_status_format_deflate_and_raw_md5(board: BoardHandle, host: RawHost) -> None:
    start_stub(host)
    _, status = host.cmd(rom.READ_REG, struct.pack("<I", rom.CHIP_MAGIC_ADDR))
    assert status == b"\x00\x00"  # two status bytes from the stub
    image = bytes(range(256)) * 64
    packed = zlib.compress(image, 9)
    begin = struct.pack("<IIIII", len(image), 1, 0x4000, 0x20000, 0)
    assert host.cmd(rom.FLASH_DEFL_BEGIN, begin)[1] == b"\x00\x00"
    pkt, chk = data_packet(packed, 0)
    assert host.cmd(rom.FLASH_DEFL_DATA, pkt, chk ^ 1)[1] == b"\xc1\x00"  # bad checksum
    assert host.cmd(rom.FLASH_DEFL_DATA, pkt, chk)[1] == b"\x00\x00"
    assert host.cmd(rom.FLASH_DEFL_END, struct.pack("<I", 1))[1] == b"\x00\x00"
    _, body = host.cmd(rom.SPI_FLASH_MD5, struct.pack("<IIII", 0x20000, len(image), 0, 0))
    assert body == hashlib.md5(image).digest() + b"\x00\x00"
    # Windowed READ_FLASH: blocks, host acks, raw MD5 at the end.
    assert (
        host.cmd(rom.READ_FLASH, struct.pack("<IIII", 0x20000, 0x2000, 0x1000, 1))[1] == b"\x00\x00"
    )
    got = b""
    while len(got) < 0x2000:
        got += host.frame()
        host.sock.sendall(slip.encode(struct.pack("<I", len(got))))
    assert got == image[:0x2000]
    assert host.frame() == hashlib.md5(image[:0x2000]).digest()
