"""An emulated ESP32 board: 4 MB flash, a factory MAC, a UART, the ROM loader and an app slot.

Boot behaviour follows the real chip closely enough for esptool and for "flash, then run":

* **Reset lines (RFC 2217).** DTR/RTS drive the usual two-transistor auto-reset circuit:
  EN is low while RTS is asserted and DTR is not; GPIO0 is low while DTR is asserted and RTS is
  not. After EN rises the chip enters ROM download mode if GPIO0 is low within
  ``STRAP_WINDOW``, else it boots from flash. On a real board the RC delay on EN makes this
  window a few ms; here it is wider because pyserial's RFC 2217 client waits ~50 ms for each
  control-line acknowledgement, so esptool's "EN high, then GPIO0 low" steps arrive that far
  apart (esptool's own ``esp_rfc2217_server`` replays the sequence locally for the same reason).
  esptool's classic reset and its ``--after hard-reset`` RTS pulse work unmodified.
* **No lines (``socket://``).** A raw TCP port carries no DTR/RTS, so ``boot_mode`` says what
  the board does at power-on (``"download"``: GPIO0 strapped low, as on a flashing jig), and a
  disconnect after a session that wrote flash stands in for esptool's ``--after hard-reset``:
  the board boots what was flashed (not when the session died mid-write or the board hung).
  ``RUN_USER_CODE`` boots it too. Nothing on the wire tells ``--after hard-reset`` from
  ``--after no-reset-stub`` there, so a bench that wants the stub to survive between sessions
  sets ``boot_on_disconnect=False`` (``--after no-reset`` is seen: it reboots into the ROM). A session that only read
  leaves the board in download mode; :meth:`EmulatedBoard.reset` presses BOOT+EN by hand.
* **Booting the app.** The chip's app/bootloader offset (0x1000 on ESP32) must hold an ESP image
  (magic 0xE9), otherwise the ROM prints ``invalid header`` and halts. The LittleFS at the vfs
  offset (from the flashed partition table, MicroPython >= 1.26 style, else 0x200000) is mounted
  with MicroPython's parameters and its files go to ``app_runner(files, serial)``.
* **After the app.** When the app returns (the firmware's ``exit``) or crashes, the board serves
  MicroPython's REPL (``emulator/repl.py``: friendly, raw and raw-paste, file operations on the
  LittleFS); a soft reset there (Ctrl-D) remounts the vfs and runs the app again with the files
  it now holds — or, from the raw REPL, goes straight back to the raw REPL, skipping main.py.

Serial pacing (``pace=True``) delays bytes by 10 bits per byte at the UART's current baud rate
in both directions, which is what bounds a real board's flashing time; tests turn it off.
Everything here runs on the emulator's event loop thread (see ``server.py``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from hw_bridge.emulator import slip
from hw_bridge.emulator.repl import MICROPYTHON_BANNER, MicroPythonRepl, ReplOptions
from hw_bridge.emulator.rom import Faults, FlashLoader

log = logging.getLogger(__name__)

FLASH_SIZE = 4 * 1024 * 1024
ROM_BAUD = 115200
APP_OFFSET = 0x1000  # ESP32: the second-stage bootloader / MicroPython .bin start
PARTITION_TABLE_OFFSET = 0x8000
STRAP_WINDOW = 0.25

BootMode = Literal["download", "app"]
Mode = Literal["off", "reset", "download", "app", "halted"]


@dataclass(frozen=True)
class BoardFiles(Mapping[str, bytes]):
    """The files the booted board found on its LittleFS, by absolute board path."""

    files: Mapping[str, bytes]
    vfs_offset: int
    block_count: int
    board_name: str = ""
    formatted: bool = False  # True when the vfs was blank and MicroPython would format it

    def __getitem__(self, path: str) -> bytes:
        return self.files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


class SerialPort:
    """The board's UART as the running app sees it (async, like ``asyncio`` streams).

    Bytes written go to whichever host is connected (and are lost if none is, like a UART with
    nothing attached); bytes from the host arrive through ``read``/``readline``.
    """

    def __init__(self, board: EmulatedBoard) -> None:
        self._board = board
        self._reader = asyncio.StreamReader(limit=1 << 20)

    @property
    def board_name(self) -> str:
        return self._board.name

    def write(self, data: bytes) -> None:
        self._board.tx_nowait(data)

    async def read(self, n: int = -1) -> bytes:
        return await self._reader.read(n)

    async def readline(self) -> bytes:
        return await self._reader.readline()

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)

    def _feed(self, data: bytes) -> None:
        self._reader.feed_data(data)

    def _close(self) -> None:
        self._reader.feed_eof()


AppRunner = Callable[[BoardFiles, SerialPort], Awaitable[None]]


async def default_app_runner(files: BoardFiles, serial: SerialPort) -> None:
    """Stand-in for ``main.py``: names the files it found and returns, so the REPL (with its
    banner) takes over, as after a real ``main.py`` that ends."""
    lines = []
    if files.formatted:
        lines.append("(vfs was blank: formatted a new LittleFS)")
    listing = ", ".join(f"{p} ({len(d)} B)" for p, d in sorted(files.items())) or "none"
    lines.append(f"files: {listing}")
    serial.write(("\r\n".join(lines) + "\r\n").encode())


class Connection(Protocol):
    """A host attached to the UART (one TCP or RFC 2217 client)."""

    def write_data(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class _Pacer:
    """Holds a byte stream to a baud rate (10 bits per byte on the wire)."""

    def __init__(self) -> None:
        self._free_at = 0.0

    async def wait(self, nbytes: int, baud: int) -> None:
        now = time.monotonic()
        self._free_at = max(now, self._free_at) + nbytes * 10 / baud
        delay = self._free_at - now
        if delay > 0.001:
            await asyncio.sleep(delay)


class _LoaderLink:
    """Connects the loader to the UART: SLIP frames in from the host, frames out to it."""

    def __init__(self, board: EmulatedBoard) -> None:
        self._board = board
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()

    async def recv_frame(self) -> bytes:
        return await self.frames.get()

    async def send_frame(self, payload: bytes) -> None:
        await self._board.tx(slip.encode(payload))


class EmulatedBoard:
    """One virtual ESP32 with flash, MAC and name; see the module docstring for boot rules."""

    chip = "ESP32"

    def __init__(
        self,
        name: str = "emu-0",
        *,
        mac: bytes | None = None,
        flash_size: int = FLASH_SIZE,
        boot_mode: BootMode = "download",
        app_runner: AppRunner | None = None,
        faults: Faults | None = None,
        pace: bool = False,
        boot_on_disconnect: bool = True,
    ) -> None:
        self.name = name
        self.mac = mac if mac is not None else random_mac(name)
        if len(self.mac) != 6:
            raise ValueError("a MAC has 6 bytes")
        self.flash = bytearray(b"\xff" * flash_size)
        self.boot_mode: BootMode = boot_mode
        self.app_runner: AppRunner = app_runner or default_app_runner
        self.faults = faults or Faults()
        self.pace = pace
        self.boot_on_disconnect = boot_on_disconnect
        self.mode: Mode = "off"
        self.baud = ROM_BAUD
        self.host_baud = ROM_BAUD
        self.boots = 0  # how many times the app was started
        self.last_files: BoardFiles | None = None
        self.events: list[str] = []  # human-readable history, handy in test failures
        self.data_blocks = 0
        self.serial: SerialPort | None = None
        self.loader: FlashLoader | None = None
        self._decoder = slip.SlipDecoder()
        self._link: _LoaderLink | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._conn_has_lines = False
        self._dtr = False
        self._rts = False
        self._strap_timer: asyncio.TimerHandle | None = None
        self._session_wrote = False
        self._rx_pacer = _Pacer()
        self._tx_pacer = _Pacer()
        self.app_error: BaseException | None = None
        self.repl = ReplOptions()  # the MicroPython REPL served after the app (and its faults)

    # --- identity / state ---------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"EmulatedBoard({self.name!r}, mac={self.mac_str}, mode={self.mode})"

    @property
    def mac_str(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac)

    @property
    def busy(self) -> bool:
        return self._conn is not None

    def log_event(self, text: str) -> None:
        """One line of the board's history (``events``), as the loader and the REPL report it."""
        self.events.append(text)
        log.debug("%s: %s", self.name, text)

    # --- power and reset ----------------------------------------------------------------------
    def power_on(self) -> None:
        if self.boot_mode == "download":
            self._enter_download("0x1 (POWERON_RESET)")
        else:
            self._boot_app("0x1 (POWERON_RESET)")

    def power_off(self) -> None:
        self._stop()
        self.mode = "off"

    def reset(self, *, download: bool) -> None:
        """Press EN (with BOOT held when ``download``), as a person at the bench would."""
        if download:
            self._enter_download("0x1 (POWERON_RESET)")
        else:
            self._boot_app("0x1 (POWERON_RESET)")

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.serial is not None:
            self.serial._close()
            self.serial = None
        self.loader = None
        self._link = None
        self._decoder.reset()

    def _enter_download(self, reason: str) -> None:
        self._stop()
        self.mode = "download"
        self.baud = ROM_BAUD
        self._session_wrote = False
        self.log_event("download mode")
        link = _LoaderLink(self)
        self._link = link
        self.loader = FlashLoader(
            flash=self.flash,
            mac=self.mac,
            baud=self.baud,
            faults=self.faults,
            on_baud=self._set_uart_baud,
            on_exit=self._loader_exit,
            on_flash_write=self._mark_written,
            log=self.log_event,
        )
        self.tx_nowait(
            f"ets Jul 29 2019 12:21:46\r\n\r\nrst:{reason},boot:0x3 "
            "(DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n".encode()
        )
        self._task = asyncio.get_running_loop().create_task(
            self.loader.run(link, self._next_block_index), name=f"{self.name}-loader"
        )

    def _next_block_index(self) -> int:
        index = self.data_blocks
        self.data_blocks += 1
        return index

    def _mark_written(self) -> None:
        self._session_wrote = True

    def _set_uart_baud(self, baud: int) -> None:
        self.baud = baud
        self.log_event(f"uart baud {baud}")

    def _loader_exit(self, run_app: bool) -> None:
        # Called from inside the loader task: defer, so the reset does not cancel its caller
        # before the reply has gone out.
        loop = asyncio.get_running_loop()
        if run_app:
            loop.call_soon(self._boot_app, "0xc (SW_CPU_RESET)")
        else:
            loop.call_soon(self._enter_download, "0xc (SW_CPU_RESET)")

    def _boot_app(self, reason: str) -> None:
        from hw_bridge import images

        self._stop()
        self.baud = ROM_BAUD
        self.tx_nowait(
            f"ets Jul 29 2019 12:21:46\r\n\r\nrst:{reason},boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n".encode()
        )
        head = bytes(self.flash[APP_OFFSET : APP_OFFSET + 4])
        if head[0] != images.ESP_IMAGE_MAGIC:
            self.mode = "halted"
            self.log_event("boot: invalid header")
            self.tx_nowait(f"invalid header: 0x{int.from_bytes(head, 'little'):08x}\r\n".encode())
            return
        board_files = self.mount_vfs()
        if board_files is None:
            return
        self.mode = "app"
        self.serial = SerialPort(self)
        self._task = asyncio.get_running_loop().create_task(
            self._run_app(board_files, self.serial), name=f"{self.name}-app"
        )

    def mount_vfs(self) -> BoardFiles | None:
        """Mount the LittleFS in flash as MicroPython's boot does; ``None``: halted (corrupt)."""
        from hw_bridge import fsimage, images

        vfs_offset = images.vfs_offset_from_flash(self.flash)
        block_count = (len(self.flash) - vfs_offset) // fsimage.BLOCK_SIZE
        vfs = bytes(self.flash[vfs_offset:])
        formatted = False
        if vfs[: fsimage.BLOCK_SIZE * 2].count(0xFF) == fsimage.BLOCK_SIZE * 2:
            files: dict[str, bytes] = {}
            formatted = True
        else:
            try:
                files = fsimage.read_image(vfs, block_count=block_count)
            except fsimage.FsImageError as exc:
                self.mode = "halted"
                self.log_event(f"boot: vfs mount failed ({exc})")
                self.tx_nowait(b"The filesystem appears to be corrupted.\r\n")
                return None
        return BoardFiles(
            files=files,
            vfs_offset=vfs_offset,
            block_count=block_count,
            board_name=self.name,
            formatted=formatted,
        )

    async def _run_app(self, files: BoardFiles, serial: SerialPort) -> None:
        """main.py (the app runner), then the REPL; a soft reset there boots again."""
        run_main = True
        while True:
            if run_main:
                self.boots += 1
                self.last_files = files
                self.log_event(f"boot: app with {len(files)} files")
                try:
                    await self.app_runner(files, serial)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the app crashed: show it like MicroPython would
                    self.app_error = exc
                    self.log_event(f"app crashed: {exc!r}")
                    serial.write(f"Traceback (most recent call last):\r\n{exc!r}\r\n".encode())
            reset = await MicroPythonRepl(self, serial, raw=not run_main).run()
            if reset is None:  # the UART closed: the board is being reset or powered off
                return
            self.log_event("soft reboot" + ("" if reset.run_main else " (raw REPL)"))
            serial.write(b"MPY: soft reboot\r\n")
            mounted = self.mount_vfs()
            if mounted is None:
                return
            files, run_main = mounted, reset.run_main

    # --- reset lines ----------------------------------------------------------------------------
    def set_lines(self, *, dtr: bool | None = None, rts: bool | None = None) -> None:
        """Apply DTR/RTS from an RFC 2217 host through the auto-reset circuit."""
        en_before = not (self._rts and not self._dtr)
        if dtr is not None:
            self._dtr = dtr
        if rts is not None:
            self._rts = rts
        en_after = not (self._rts and not self._dtr)
        gpio0_low = self._dtr and not self._rts
        if en_before and not en_after:  # EN pulled low: the chip is held in reset
            self._stop()
            self.mode = "reset"
            self._cancel_strap_timer()
        elif en_after and not en_before:  # EN released: the chip starts and samples GPIO0
            if gpio0_low:
                self._enter_download("0x1 (POWERON_RESET)")
            else:
                self._strap_timer = asyncio.get_running_loop().call_later(
                    STRAP_WINDOW, self._strap_window_closed
                )
        elif self._strap_timer is not None and gpio0_low:
            self._cancel_strap_timer()
            self._enter_download("0x1 (POWERON_RESET)")

    def _cancel_strap_timer(self) -> None:
        if self._strap_timer is not None:
            self._strap_timer.cancel()
            self._strap_timer = None

    def _strap_window_closed(self) -> None:
        self._strap_timer = None
        self._boot_app("0x1 (POWERON_RESET)")

    # --- UART -----------------------------------------------------------------------------------
    def attach(self, conn: Connection, *, has_lines: bool) -> bool:
        if self._conn is not None:
            return False
        self._conn = conn
        self._conn_has_lines = has_lines
        self.log_event("host connected")
        return True

    def detach(self, conn: Connection) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        self.log_event("host disconnected")
        if (
            not self._conn_has_lines
            and self.boot_on_disconnect
            and self.mode == "download"
            and self._session_wrote
            and self.loader is not None
            and not self.loader.stalled
            and not self.loader.write_pending
        ):
            # socket:// cannot pulse RTS: a finished flashing session stands in for
            # esptool's --after hard-reset. A session that died mid-write leaves the chip in
            # the loader, as esptool (which resets only on success) would.
            self._boot_app("0x1 (POWERON_RESET)")

    async def rx(self, data: bytes) -> None:
        """Bytes from the host, paced at the UART's baud rate when pacing is on."""
        if self.pace:
            await self._rx_pacer.wait(len(data), self.baud)
        if self.mode == "download" and self._link is not None:
            for frame in self._decoder.feed(data):
                self._link.frames.put_nowait(frame)
        elif self.mode == "app" and self.serial is not None:
            self.serial._feed(data)
        # in reset, halted or off the bytes fall on the floor

    async def tx(self, data: bytes) -> None:
        if self.pace:
            await self._tx_pacer.wait(len(data), self.baud)
        self.tx_nowait(data)

    def tx_nowait(self, data: bytes) -> None:
        if self._conn is not None:
            self._conn.write_data(data)


def random_mac(seed: str) -> bytes:
    """A stable, locally administered MAC derived from the board name."""
    rng = random.Random(seed)
    return bytes([0x02, 0x5C, 0xF1] + [rng.randrange(256) for _ in range(3)])


__all__ = [
    "MICROPYTHON_BANNER",
    "AppRunner",
    "BoardFiles",
    "BootMode",
    "EmulatedBoard",
    "Faults",
    "SerialPort",
    "default_app_runner",
    "random_mac",
]
