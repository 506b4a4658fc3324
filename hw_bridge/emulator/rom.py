"""The ESP32 ROM serial loader and esptool's flasher stub, as a protocol state machine.

What the unmodified esptool (v5) drives, learned from its loader and the public stub sources:
SLIP frames carrying ``dir, op, u16 len, u32 checksum, data``; responses ``1, op, u16 len,
u32 value, data, status`` with 4 status bytes from the ROM (``failed, error, 0, 0``) and 2 from
the stub (``error, 0``). The stub is never executed — after ``MEM_END`` with an entry point
inside the uploaded RAM segments the loader sends ``OHAI`` and from then on behaves like the
stub (bigger blocks, raw MD5, ``READ_FLASH``/``ERASE_*``). Only ESP32 (magic 0x00F01D83) is
modelled.

The state machine is transport-agnostic: it reads frames from and writes frames to a
:class:`Link`; the board wires that to a TCP or RFC 2217 connection.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

# --- opcodes (esptool's ESP_CMDS) ---------------------------------------------------------
FLASH_BEGIN = 0x02
FLASH_DATA = 0x03
FLASH_END = 0x04
MEM_BEGIN = 0x05
MEM_END = 0x06
MEM_DATA = 0x07
SYNC = 0x08
WRITE_REG = 0x09
READ_REG = 0x0A
SPI_SET_PARAMS = 0x0B
SPI_ATTACH = 0x0D
READ_FLASH_SLOW = 0x0E
CHANGE_BAUDRATE = 0x0F
FLASH_DEFL_BEGIN = 0x10
FLASH_DEFL_DATA = 0x11
FLASH_DEFL_END = 0x12
SPI_FLASH_MD5 = 0x13
GET_SECURITY_INFO = 0x14
ERASE_FLASH = 0xD0
ERASE_REGION = 0xD1
READ_FLASH = 0xD2
RUN_USER_CODE = 0xD3

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + 32 * b"\x55"
CHECKSUM_SEED = 0xEF

# ROM error codes (second status byte after a 1); esptool shows them as 0x01xx.
ROM_INVALID_MSG = 0x05
ROM_FAILED = 0x06
ROM_BAD_CHECKSUM = 0x07
ROM_FLASH_WRITE_ERR = 0x08
ROM_FLASH_READ_ERR = 0x09
ROM_DEFLATE_ERR = 0x0B

# Stub error codes (first status byte); esptool shows them as 0xCx00.
STUB_BAD_DATA_LEN = 0xC0
STUB_BAD_DATA_CHECKSUM = 0xC1
STUB_BAD_BLOCKSIZE = 0xC2
STUB_FAILED_SPI_OP = 0xC4
STUB_NOT_IN_FLASH_MODE = 0xC6
STUB_INFLATE_ERROR = 0xC7
STUB_NOT_ENOUGH_DATA = 0xC8
STUB_TOO_MUCH_DATA = 0xC9
STUB_CMD_NOT_IMPLEMENTED = 0xFF

ROM_MAX_BLOCK = 0x1800  # ESP_RAM_BLOCK; flash blocks from esptool are 0x400 to the ROM
STUB_MAX_BLOCK = 0x4000  # the stub's MAX_WRITE_BLOCK

# --- ESP32 memory map bits esptool reads -------------------------------------------------
CHIP_MAGIC_ADDR = 0x40001000
ESP32_MAGIC = 0x00F01D83
EFUSE_BASE = 0x3FF5A000
UART0_CLKDIV = 0x3FF40014
APB_CTL_DATE = 0x3FF6607C
RTC_CALI_CFG1 = 0x3FF5F06C
GPIO_STRAP = 0x3FF44038
SPI_BASE = 0x3FF42000
SPI_CMD = SPI_BASE + 0x00
SPI_ADDR = SPI_BASE + 0x04
SPI_USR = SPI_BASE + 0x1C
SPI_USR1 = SPI_BASE + 0x20
SPI_USR2 = SPI_BASE + 0x24
SPI_MOSI_DLEN = SPI_BASE + 0x28
SPI_MISO_DLEN = SPI_BASE + 0x2C
SPI_W0 = SPI_BASE + 0x80
SPI_CMD_USR = 1 << 18

XTAL_HZ = 40_000_000
SECTOR = 0x1000


def checksum(data: bytes, state: int = CHECKSUM_SEED) -> int:
    """The ROM's data checksum: 0xEF XOR every payload byte."""
    # XOR-folding 8 bytes at a time keeps this cheap for 16 KiB blocks.
    n = len(data) // 8 * 8
    acc = 0
    if n:
        words = struct.unpack(f"<{n // 8}Q", data[:n])
        for w in words:
            acc ^= w
        for _ in range(8):
            state ^= acc & 0xFF
            acc >>= 8
    for b in data[n:]:
        state ^= b
    return state


def crc8_maxim(data: bytes) -> int:
    """CRC-8/MAXIM, the flavour ESP32 eFuses use to protect the factory MAC."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


class Link(Protocol):
    """What the loader needs from the serial line (the board implements it)."""

    async def recv_frame(self) -> bytes: ...

    async def send_frame(self, payload: bytes) -> None: ...


@dataclass
class Faults:
    """Failure injection for tests: what a flaky cable or a crashing board would do.

    ``corrupt_block``: the data block with this index (counted over every FLASH_DATA /
    FLASH_DEFL_DATA packet the board ever received, from 0) arrives with one byte flipped, so the
    loader's checksum check rejects it; ``corrupt_times`` limits how many arrivals are hit
    (``None`` = every retry too, which makes esptool give up). ``stall_after_blocks``: after that
    many data blocks the board stops answering anything until it is reset.
    """

    corrupt_block: int | None = None
    corrupt_times: int | None = None
    stall_after_blocks: int | None = None
    corrupted: int = 0  # runtime: how many arrivals were corrupted so far


@dataclass
class _Write:
    offset: int
    size: int  # bytes still expected (stub: uncompressed total; ROM: erase size)
    block_size: int
    compressed: bool
    cursor: int
    next_seq: int = 0
    inflater: zlib._Decompress | None = None
    blocks_expected: int = 0


class FlashLoader:
    """One download-mode session: the ROM until the stub is "uploaded", then the stub.

    ``flash`` is the board's flash (shared, mutated in place); ``on_exit`` is called when the
    host asks the chip to leave the loader (``RUN_USER_CODE`` or ``FLASH_END`` "run app") with
    ``True`` for "boot the app" and ``False`` for "reboot into the ROM loader".
    """

    def __init__(
        self,
        *,
        flash: bytearray,
        mac: bytes,
        baud: int,
        faults: Faults,
        on_baud: Callable[[int], None],
        on_exit: Callable[[bool], None],
        on_flash_write: Callable[[], None],
        log: Callable[[str], None],
    ) -> None:
        self.flash = flash
        self.mac = mac
        self.baud = baud
        self.faults = faults
        self._on_baud = on_baud
        self._on_exit = on_exit
        self._on_flash_write = on_flash_write
        self._log = log
        self.stub = False
        self.regs: dict[int, int] = {}
        self._mem: list[tuple[int, bytearray, int]] = []  # (addr, data, expected size)
        self._mem_cur: tuple[int, int, int] | None = None  # (addr, size, next_seq)
        self._write: _Write | None = None
        self._flash_size_param = len(flash)
        self.stalled = False
        self._block_counter: Callable[[], int] = lambda: 0

    @property
    def write_pending(self) -> bool:
        """A flash write was begun and not all of its data has arrived."""
        return self._write is not None and self._write.size > 0

    # --- framing helpers -------------------------------------------------------------------
    def _resp(self, op: int, *, value: int = 0, payload: bytes = b"", error: int = 0) -> bytes:
        if self.stub:
            status = bytes((error, 0))
        else:
            status = bytes((1, error, 0, 0)) if error else b"\x00\x00\x00\x00"
        body = payload + status
        return struct.pack("<BBHI", 1, op, len(body), value & 0xFFFFFFFF) + body

    def _err(self, op: int, rom_code: int, stub_code: int) -> bytes:
        return self._resp(op, error=stub_code if self.stub else rom_code)

    # --- main loop -------------------------------------------------------------------------
    async def run(self, link: Link, block_counter: Callable[[], int]) -> None:
        """Serve requests until cancelled; ``block_counter`` bumps and returns the lifetime
        data-block index used by the fault knobs."""
        self._block_counter = block_counter
        while True:
            frame = await link.recv_frame()
            if self.stalled:
                continue
            await self.handle(frame, link)

    async def handle(self, frame: bytes, link: Link) -> None:
        if len(frame) < 8 or frame[0] != 0:
            return  # not a request (e.g. a stray READ_FLASH ack): the ROM ignores it
        _, op, size, chk = struct.unpack_from("<BBHI", frame)
        data = frame[8:]
        if len(data) != size:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        handler = _HANDLERS.get(op)
        if (
            handler is None
            or (op in _STUB_ONLY and not self.stub)
            or (op in _ROM_ONLY and self.stub)
        ):
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_CMD_NOT_IMPLEMENTED))
            return
        await handler(self, op, data, chk, link)

    # --- handlers --------------------------------------------------------------------------
    async def _sync(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if data != SYNC_PAYLOAD:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        # The ROM answers a SYNC eight times with a non-zero value; the stub with value 0,
        # which is how esptool notices a stub that survived from an earlier session.
        frame = self._resp(op, value=0 if self.stub else 0x20120707)
        for _ in range(8):
            await link.send_frame(frame)

    async def _read_reg(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 4:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        (addr,) = struct.unpack("<I", data)
        await link.send_frame(self._resp(op, value=self.read_reg(addr)))

    async def _write_reg(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if not data or len(data) % 16:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        for i in range(0, len(data), 16):
            addr, value, mask, _delay = struct.unpack_from("<IIII", data, i)
            self.write_reg(addr, value, mask)
        await link.send_frame(self._resp(op))

    async def _spi_set_params(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 24:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        _fl_id, total, _blk, _sec, _page, _mask = struct.unpack("<6I", data)
        self._flash_size_param = total
        await link.send_frame(self._resp(op))

    async def _spi_attach(self, op: int, data: bytes, chk: int, link: Link) -> None:
        expected = 4 if self.stub else 8
        if len(data) != expected:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        await link.send_frame(self._resp(op))

    async def _change_baud(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 8:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        new, _old = struct.unpack("<II", data)
        # The reply still goes out at the old rate; only then does the UART switch.
        await link.send_frame(self._resp(op))
        if new:
            self.baud = new
            self._on_baud(new)

    async def _mem_begin(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 16:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        size, _blocks, blocksize, addr = struct.unpack("<IIII", data)
        if blocksize > ROM_MAX_BLOCK and not self.stub:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_BLOCKSIZE))
            return
        self._mem_cur = (addr, size, 0)
        self._mem.append((addr, bytearray(), size))
        await link.send_frame(self._resp(op))

    async def _mem_data(self, op: int, data: bytes, chk: int, link: Link) -> None:
        payload = self._data_payload(op, data, chk)
        if not isinstance(payload, bytes):
            await link.send_frame(payload[0])
            return
        if self._mem_cur is None:
            await link.send_frame(self._err(op, ROM_FAILED, STUB_NOT_IN_FLASH_MODE))
            return
        addr, size, seq = self._mem_cur
        if struct.unpack_from("<I", data, 4)[0] != seq:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        self._mem[-1][1].extend(payload)
        self._mem_cur = (addr, size, seq + 1)
        await link.send_frame(self._resp(op))

    async def _mem_end(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 8:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        no_entry, entry = struct.unpack("<II", data)
        incomplete = any(len(buf) < size for _, buf, size in self._mem)
        await link.send_frame(
            self._err(op, ROM_FAILED, STUB_NOT_ENOUGH_DATA) if incomplete else self._resp(op)
        )
        if incomplete or no_entry:
            return
        if any(addr <= entry < addr + len(buf) for addr, buf, _ in self._mem):
            # "Jump" to the uploaded code: we take it to be esptool's flasher stub.
            self.stub = True
            self._mem.clear()
            self._mem_cur = None
            self._log("stub running")
            await link.send_frame(b"OHAI")
        else:
            self._log(f"MEM_END entry {entry:#x} outside uploaded RAM: chip hangs")
            self.stalled = True

    def _data_payload(self, op: int, data: bytes, chk: int) -> bytes | tuple[bytes]:
        """Validate a data packet (size, seq, 0, 0, payload); a 1-tuple holds an error frame."""
        if len(data) < 16:
            return (self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN),)
        length = struct.unpack_from("<I", data)[0]
        payload = data[16:]
        if length != len(payload):
            return (self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN),)
        if checksum(payload) != chk & 0xFF:
            return (self._err(op, ROM_BAD_CHECKSUM, STUB_BAD_DATA_CHECKSUM),)
        return payload

    def _erase(self, start: int, size: int) -> None:
        first = start - start % SECTOR
        end = min(len(self.flash), -(-(start + size) // SECTOR) * SECTOR)
        if end > first:
            self.flash[first:end] = b"\xff" * (end - first)

    async def _flash_begin(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) not in (16, 20):
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        limit = STUB_MAX_BLOCK if self.stub else ROM_MAX_BLOCK
        if block_size == 0 or block_size > limit:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_BLOCKSIZE))
            return
        compressed = op == FLASH_DEFL_BEGIN
        # stub: the (uncompressed) byte count, erased as it writes; ROM: the erase size, erased
        # up front. Either way the covered sectors end up erased before data lands.
        total = size
        if offset + total > len(self.flash):
            await link.send_frame(self._err(op, ROM_FLASH_WRITE_ERR, STUB_FAILED_SPI_OP))
            return
        self._erase(offset, total)
        self._write = _Write(
            offset=offset,
            size=total,
            block_size=block_size,
            compressed=compressed,
            cursor=offset,
            inflater=zlib.decompressobj() if compressed else None,
            blocks_expected=blocks,
        )
        if total:
            self._on_flash_write()
        await link.send_frame(self._resp(op))

    async def _flash_data(self, op: int, data: bytes, chk: int, link: Link) -> None:
        index = self._block_counter()
        faults = self.faults
        if faults.stall_after_blocks is not None and index >= faults.stall_after_blocks:
            self._log(f"fault: stalled after {faults.stall_after_blocks} flash blocks")
            self.stalled = True
            return
        if (
            faults.corrupt_block is not None
            and index >= faults.corrupt_block
            and (faults.corrupt_times is None or faults.corrupted < faults.corrupt_times)
            and len(data) > 16
        ):
            # Line noise on this packet: flip one payload bit before the checksum is checked.
            faults.corrupted += 1
            mutable = bytearray(data)
            mutable[16 + (len(data) - 16) // 2] ^= 0x01
            data = bytes(mutable)
            self._log(f"fault: corrupted data block {index}")
        w = self._write
        want_compressed = op == FLASH_DEFL_DATA
        if w is None or w.compressed != want_compressed:
            await link.send_frame(self._err(op, ROM_FAILED, STUB_NOT_IN_FLASH_MODE))
            return
        payload = self._data_payload(op, data, chk)
        if not isinstance(payload, bytes):
            await link.send_frame(payload[0])
            return
        seq = struct.unpack_from("<I", data, 4)[0]
        if seq != w.next_seq:
            # The real stub does not check this; rejecting it catches host bugs early.
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        if w.compressed:
            assert w.inflater is not None
            try:
                out = w.inflater.decompress(payload)
            except zlib.error:
                await link.send_frame(self._err(op, ROM_DEFLATE_ERR, STUB_INFLATE_ERROR))
                return
        else:
            out = payload
        if self.stub:
            if w.compressed and len(out) > w.size:
                await link.send_frame(self._err(op, ROM_FLASH_WRITE_ERR, STUB_TOO_MUCH_DATA))
                return
            out = out[: w.size]  # uncompressed blocks arrive 0xFF-padded to the block size
        else:
            # ROM: raw blocks land at offset + seq * block_size, padding included.
            if not w.compressed:
                w.cursor = w.offset + seq * w.block_size
            if w.cursor + len(out) > len(self.flash):
                await link.send_frame(self._err(op, ROM_FLASH_WRITE_ERR, STUB_FAILED_SPI_OP))
                return
        end = w.cursor + len(out)
        self.flash[w.cursor : end] = out
        w.cursor = end
        w.size = max(0, w.size - len(out))
        w.next_seq += 1
        await link.send_frame(self._resp(op))

    async def _flash_end(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 4:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        (flag,) = struct.unpack("<I", data)
        w = self._write
        if self.stub:
            if w is None:
                await link.send_frame(self._err(op, ROM_FAILED, STUB_NOT_IN_FLASH_MODE))
                return
            if w.compressed and w.size > 0:
                await link.send_frame(self._err(op, ROM_FAILED, STUB_NOT_ENOUGH_DATA))
                return
        self._write = None
        await link.send_frame(self._resp(op))
        if self.stub:
            if flag == 0:  # stub: "reboot" -> software reset, straps still say download
                self._on_exit(False)
        elif flag == 1:  # ROM: "run user code"
            self._on_exit(True)
        else:
            self._on_exit(False)

    async def _md5(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 16:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        addr, size, _, _ = struct.unpack("<IIII", data)
        if addr + size > len(self.flash):
            await link.send_frame(self._err(op, ROM_FLASH_READ_ERR, STUB_FAILED_SPI_OP))
            return
        digest = hashlib.md5(self.flash[addr : addr + size])
        payload = digest.digest() if self.stub else digest.hexdigest().encode()
        await link.send_frame(self._resp(op, payload=payload))

    async def _erase_flash(self, op: int, data: bytes, chk: int, link: Link) -> None:
        self.flash[:] = b"\xff" * len(self.flash)
        self._on_flash_write()
        await link.send_frame(self._resp(op))

    async def _erase_region(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 8:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        offset, size = struct.unpack("<II", data)
        if offset % SECTOR or size % SECTOR or offset + size > len(self.flash):
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        self._erase(offset, size)
        self._on_flash_write()
        await link.send_frame(self._resp(op))

    async def _read_flash(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 16:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        offset, length, block_size, in_flight = struct.unpack("<IIII", data)
        if offset + length > len(self.flash) or block_size == 0:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        await link.send_frame(self._resp(op))
        # Windowed stream: at most in_flight blocks unacknowledged; the host acks with the
        # running byte count as a 4-byte frame; a 16-byte raw MD5 closes the stream.
        window = max(1, in_flight) * block_size
        sent = acked = 0
        while acked < length:
            while sent < length and sent - acked < window:
                n = min(block_size, length - sent)
                await link.send_frame(bytes(self.flash[offset + sent : offset + sent + n]))
                sent += n
            ack = await link.recv_frame()
            if len(ack) == 4:
                acked = max(acked, struct.unpack("<I", ack)[0])
        await link.send_frame(hashlib.md5(self.flash[offset : offset + length]).digest())

    async def _read_flash_slow(self, op: int, data: bytes, chk: int, link: Link) -> None:
        if len(data) != 8:
            await link.send_frame(self._err(op, ROM_INVALID_MSG, STUB_BAD_DATA_LEN))
            return
        offset, length = struct.unpack("<II", data)
        if length > 64 or offset + length > len(self.flash):
            await link.send_frame(self._err(op, ROM_FLASH_READ_ERR, STUB_BAD_DATA_LEN))
            return
        block = bytes(self.flash[offset : offset + length]).ljust(64, b"\xff")
        await link.send_frame(self._resp(op, payload=block))

    async def _run_user_code(self, op: int, data: bytes, chk: int, link: Link) -> None:
        self._on_exit(True)  # no reply: the stub just returns into the boot flow

    # --- registers ---------------------------------------------------------------------------
    def efuse_words(self) -> list[int]:
        """eFuse block 0 as an ESP32-D0WD-V3 rev 3.0 with this board's factory MAC."""
        mac = self.mac
        words = [0] * 7
        words[1] = int.from_bytes(mac[2:6], "big")
        words[2] = (crc8_maxim(mac[::-1]) << 16) | int.from_bytes(mac[0:2], "big")
        # word3: package 1 (D0WD) in bits 9-11, CHIP_VER_REV1 (bit 15) for rev >= 1.
        words[3] = (1 << 9) | (1 << 15)
        # word4: CK8M frequency byte the ROM uses for its crystal estimate (see RTC_CALI_CFG1).
        words[4] = 100
        # word5: CHIP_VER_REV2 (bit 20); minor revision (bits 24-25) 0.
        words[5] = 1 << 20
        return words

    def read_reg(self, addr: int) -> int:
        if addr == CHIP_MAGIC_ADDR:
            return ESP32_MAGIC
        if EFUSE_BASE <= addr < EFUSE_BASE + 0x80 and addr % 4 == 0:
            words = self.efuse_words()
            n = (addr - EFUSE_BASE) // 4
            return words[n] if n < len(words) else self.regs.get(addr, 0)
        if addr == UART0_CLKDIV:
            # The ROM derives its divider from the auto-detected baud rate and the APB clock,
            # which equals the 40 MHz crystal in download mode; esptool multiplies back.
            return round(XTAL_HZ / max(1, self.baud)) & 0xFFFFF
        if addr == APB_CTL_DATE:
            return 1 << 31  # rev bit 2: together with the eFuse bits -> major revision 3
        if addr == RTC_CALI_CFG1:
            # cali_val * 15625 * ck8m / 40 == 40 MHz: the ROM's crystal estimate is exact, so
            # esptool's ESP32 baud-rate correction is a no-op.
            return 1024 << 7
        if addr == GPIO_STRAP:
            return 0x03  # GPIO0 low at reset: DOWNLOAD_BOOT
        return self.regs.get(addr, 0)

    def write_reg(self, addr: int, value: int, mask: int) -> None:
        old = self.regs.get(addr, 0)
        self.regs[addr] = (old & ~mask) | (value & mask)
        if addr == SPI_CMD and self.regs[addr] & SPI_CMD_USR:
            self._spi_user_command()
            self.regs[addr] &= ~SPI_CMD_USR  # done at once: esptool's first poll sees it clear

    def _spi_user_command(self) -> None:
        """Execute the SPI flash command esptool set up in the SPI1 user registers."""
        usr = self.regs.get(SPI_USR, 0)
        usr2 = self.regs.get(SPI_USR2, 0)
        opcode = usr2 & 0xFF
        addr = None
        if usr & (1 << 30):
            addr_bits = ((self.regs.get(SPI_USR1, 0) >> 26) & 0x3F) + 1
            addr = self.regs.get(SPI_ADDR, 0) >> (32 - addr_bits)
        miso_bits = (self.regs.get(SPI_MISO_DLEN, 0) + 1) if usr & (1 << 28) else 0
        answer = _spi_flash_answer(opcode, addr, len(self.flash))
        if miso_bits:
            value = int.from_bytes(answer[:4].ljust(4, b"\xff"), "little")
            if miso_bits < 32:
                value &= (1 << miso_bits) - 1
            self.regs[SPI_W0] = value


# 4 MB-class flash answers (a Winbond W25Q-like part); the size byte follows the real flash.
_SIZE_ID = {1 << 20: 0x14, 2 << 20: 0x15, 4 << 20: 0x16, 8 << 20: 0x17, 16 << 20: 0x18}


def _sfdp_table() -> bytes:
    """A minimal SFDP area: header, JEDEC basic table header and a vendor table header."""
    table = bytearray(b"\xff" * 0x80)
    table[0:8] = b"SFDP" + bytes((0x06, 0x01, 0x01, 0xFF))  # rev 1.6, 2 parameter headers
    table[8:16] = bytes((0x00, 0x06, 0x01, 0x10, 0x30, 0x00, 0x00, 0xFF))  # JEDEC, 16 dwords
    table[16:24] = bytes((0xEF, 0x00, 0x01, 0x01, 0x70, 0x00, 0x00, 0xFF))  # vendor 0xEF
    return bytes(table)


_SFDP = _sfdp_table()


def _spi_flash_answer(opcode: int, addr: int | None, flash_size: int) -> bytes:
    if opcode == 0x9F:  # RDID: manufacturer, memory type, capacity
        return bytes((0xEF, 0x40, _SIZE_ID.get(flash_size, 0x16)))
    if opcode == 0x5A and addr is not None:  # RDSFDP
        return _SFDP[addr : addr + 4] if addr < len(_SFDP) else b"\xff\xff\xff\xff"
    if opcode in (0x05, 0x35, 0x15):  # status registers: idle, unprotected
        return b"\x00"
    if opcode == 0xAB:  # release power-down / device ID
        return bytes((0x15,))
    return b""  # write enable, resets, power-down and friends: nothing to read


_Handler = Callable[[FlashLoader, int, bytes, int, Link], Awaitable[None]]
_HANDLERS: dict[int, _Handler] = {
    SYNC: FlashLoader._sync,
    READ_REG: FlashLoader._read_reg,
    WRITE_REG: FlashLoader._write_reg,
    SPI_SET_PARAMS: FlashLoader._spi_set_params,
    SPI_ATTACH: FlashLoader._spi_attach,
    CHANGE_BAUDRATE: FlashLoader._change_baud,
    MEM_BEGIN: FlashLoader._mem_begin,
    MEM_DATA: FlashLoader._mem_data,
    MEM_END: FlashLoader._mem_end,
    FLASH_BEGIN: FlashLoader._flash_begin,
    FLASH_DATA: FlashLoader._flash_data,
    FLASH_END: FlashLoader._flash_end,
    FLASH_DEFL_BEGIN: FlashLoader._flash_begin,
    FLASH_DEFL_DATA: FlashLoader._flash_data,
    FLASH_DEFL_END: FlashLoader._flash_end,
    SPI_FLASH_MD5: FlashLoader._md5,
    ERASE_FLASH: FlashLoader._erase_flash,
    ERASE_REGION: FlashLoader._erase_region,
    READ_FLASH: FlashLoader._read_flash,
    READ_FLASH_SLOW: FlashLoader._read_flash_slow,
    RUN_USER_CODE: FlashLoader._run_user_code,
}
_STUB_ONLY = frozenset({ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE})
_ROM_ONLY = frozenset({READ_FLASH_SLOW})
