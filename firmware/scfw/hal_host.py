"""HAL for CPython: tests and the board emulator run the real firmware app on the host.

Contract (used by hw_bridge's board emulator):

    from firmware.scfw import app, hal_host
    hal = hal_host.HostHal(
        write_line=send,            # Callable[[bytes], None]: one board line incl. b"\\n"
        device_uid=b"\\x24\\x0a\\xc4\\x00\\x00\\x01",  # 6 bytes; MAC and default device_id derive from it
        chip="ESP32",               # reported in hello
        mac=None,                   # "24:0a:c4:00:00:01"; default: from device_uid
        fs_dir=Path(...),           # where scfw_config.json lives, or None and then
        files={"/scfw_config.json": b"..."},  # an in-memory board filesystem (board path ->
                                    # bytes), e.g. the LittleFS contents; the app writes back here
        wifi=hal_host.FakeWifi(),   # optional: .drop() / .restore() to simulate an outage
        readline=None,              # optional async () -> bytes, used when run() gets no lines
        platform="host-cpython",    # reported as the MicroPython version in hello
        heap_bytes=None,            # model a board's GC heap (HEAP_BYTES[chip]); None: unlimited
    )
    await app.run(hal, lines)       # lines: async iterable of bytes lines, or an object with an
                                    # async readline() -> bytes (b"" = EOF); None = hal.readline
    # returns after the `exit` command or at end of input; cancel the task to stop it anytime.

The app sends real HTTP with asyncio streams to the configured target (through
`HostHal.open_connection`, which fails while the fake Wi-Fi is down). The clock is
`time.monotonic_ns()`; there is no I2S on a host.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from .hal import Hal, format_mac

# The heap a run can use per chip (firmware/PROTOCOL.md, "Memory plan"), and what the app's code,
# the runtime and its objects take of it (measured on the 32-bit WebAssembly MicroPython with
# .mpy modules). With these the emulator refuses, like the board, a config that does not fit.
HEAP_BYTES = {"ESP32": 110 * 1024, "ESP32-C3": 150 * 1024, "ESP32-S3": 180 * 1024}
BASE_BYTES = 45 * 1024


class FakeWifi:
    """A network that can be made to drop. While down, connects fail and new TCP connects fail."""

    def __init__(self, up: bool = True, connect_delay_s: float = 0.0, ssid: str | None = None):
        self.up = up
        self.connect_delay_s = connect_delay_s
        self.ssid = ssid  # if set, only this SSID is accepted
        self.associated = False
        self.connect_calls = 0

    def drop(self) -> None:
        self.up = False
        self.associated = False

    def restore(self) -> None:
        self.up = True


class HostHal(Hal):
    chip_name = "ESP32"

    def __init__(
        self,
        write_line: Callable[[bytes], Any],
        device_uid: bytes = b"\x24\x0a\xc4\x00\x00\x01",
        chip: str = "ESP32",
        mac: str | None = None,
        fs_dir: Path | str | None = None,
        files: MutableMapping[str, bytes] | None = None,
        wifi: FakeWifi | None = None,
        readline: Callable[[], Awaitable[bytes]] | None = None,
        platform: str = "host-cpython",
        heap_bytes: int | None = None,
    ) -> None:
        self._write_line = write_line
        self._uid = bytes(device_uid)
        self._chip = chip
        self._mac = mac or format_mac(self._uid)
        self.fs_dir = Path(fs_dir) if fs_dir is not None else None
        self.files: MutableMapping[str, bytes] = files if files is not None else {}
        self.wifi = wifi or FakeWifi()
        self._readline = readline
        self._platform = platform
        self.heap_bytes = heap_bytes
        self._pool: Any = None

    def track_pool(self, pool: Any) -> None:
        """The app's buffer pool (mem.Pool): what the heap model counts as allocated."""
        self._pool = pool

    def mem_free(self) -> int | None:
        if self.heap_bytes is None:
            return None
        held = self._pool.allocated() if self._pool is not None else 0
        return max(self.heap_bytes - BASE_BYTES - held, 0)

    def mem_total(self) -> int | None:
        return None if self.heap_bytes is None else self.heap_bytes - BASE_BYTES

    def write_line(self, data: bytes) -> None:
        self._write_line(data)

    async def readline(self) -> bytes:
        if self._readline is None:
            return b""
        return await self._readline()

    def monotonic_us(self) -> int:
        import time

        return time.monotonic_ns() // 1000

    async def open_connection(self, host: str, port: int, ssl: Any = None) -> Any:
        if not self.wifi.up:
            raise OSError(113, "network unreachable (fake Wi-Fi down)")
        if ssl:
            return await asyncio.open_connection(host, port, ssl=ssl)
        return await asyncio.open_connection(host, port)

    async def wifi_connect(self, ssid: str, key: str, timeout_s: float) -> bool:
        self.wifi.connect_calls += 1
        if self.wifi.connect_delay_s:
            await asyncio.sleep(min(self.wifi.connect_delay_s, timeout_s))
        ok = self.wifi.up and (self.wifi.ssid is None or self.wifi.ssid == ssid)
        self.wifi.associated = ok
        return ok

    def wifi_connected(self) -> bool:
        return self.wifi.up and self.wifi.associated

    def wifi_disconnect(self) -> None:
        self.wifi.associated = False

    def wifi_info(self) -> dict[str, Any]:
        return {"ip": "127.0.0.1"} if self.wifi_connected() else {}

    def unique_id(self) -> bytes:
        return self._uid

    def mac(self) -> str:
        return self._mac

    def chip(self) -> str:
        return self._chip

    def platform(self) -> str:
        return self._platform

    def read_file(self, name: str) -> str | None:
        if self.fs_dir is None:
            data = self.files.get("/" + name)
            return None if data is None else bytes(data).decode()
        try:
            return (self.fs_dir / name).read_text()
        except FileNotFoundError:
            return None

    def write_file(self, name: str, text: str) -> None:
        if self.fs_dir is None:
            self.files["/" + name] = text.encode()
            return
        self.fs_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.fs_dir / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.fs_dir / name)
