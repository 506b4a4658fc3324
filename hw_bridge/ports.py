"""Finding ESP32 boards on USB and naming them so a name survives replugging.

``/dev/ttyUSB3`` changes with plug order, so a board is named by its USB serial number
(``sn-0001A2B3``) or, when the bridge has none or shares a default one with another board (CH340s
have none; many CP2102s all report ``0001``), by the USB port it sits in (``usb-1-2.3``). Both are
what pyserial's ``list_ports`` reports, so names also work in ``configs/boards.toml``.

A port spec, wherever the user gives one, is a path (``/dev/ttyUSB0``, ``COM4``), a stable name,
``auto`` (the only board plugged in), or a pyserial URL (``socket://host:port``,
``rfc2217://host:port`` for boards behind esptool's ``esp_rfc2217_server``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from scfleet_core.errors import HardwareError

#: USB-UART bridges and native USB found on ESP32 boards: (VID, PID) -> what it is.
KNOWN_BRIDGES: dict[tuple[int, int], str] = {
    (0x10C4, 0xEA60): "CP210x",
    (0x10C4, 0xEA64): "CP2102C",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x7522): "CH340K",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FT232R",
    (0x0403, 0x6010): "FT2232",
    (0x0403, 0x6011): "FT4232",
    (0x0403, 0x6014): "FT232H",
    (0x0403, 0x6015): "FT231X",
    (0x303A, 0x1001): "ESP USB-Serial/JTAG",
    (0x303A, 0x0002): "ESP32-S2 ROM USB",
    (0x303A, 0x4001): "MicroPython CDC",
}
#: Serial speeds a port may be opened at, wherever one is given (``[boards] baud``, ``--baud``).
MIN_BAUD, MAX_BAUD = 300, 12_000_000
#: The longest wait for one reply an ``hw`` command's ``--timeout`` may ask for: an hour.
MAX_REPLY_TIMEOUT_S = 3600.0
URL_SCHEMES = ("socket://", "rfc2217://", "loop://", "spy://")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BoardPort:
    """One detected board: its stable ``name`` and what pyserial reported."""

    name: str
    device: str
    vid: int | None
    pid: int | None
    bridge: str
    serial_number: str | None
    location: str | None
    description: str

    @property
    def usb_id(self) -> str:
        if self.vid is None or self.pid is None:
            return "-"
        return f"{self.vid:04X}:{self.pid:04X}"


def _clean(text: str) -> str:
    return _UNSAFE.sub("-", text.strip()).strip("-")


def location_name(location: str | None) -> str | None:
    """``1-2.3:1.0`` (bus-ports:config.interface) -> ``usb-1-2.3``; the interface is dropped
    because it is the same for every board of a kind."""
    if not location:
        return None
    port_path = location.split(":", 1)[0]
    cleaned = _clean(port_path)
    return f"usb-{cleaned}" if cleaned else None


def is_board(info: Any) -> bool:
    return (getattr(info, "vid", None), getattr(info, "pid", None)) in KNOWN_BRIDGES


def name_ports(infos: Iterable[Any], *, all_ports: bool = False) -> list[BoardPort]:
    """Stable names for ``list_ports`` entries (ESP32 bridges only unless ``all_ports``).

    Serial numbers win, unless two listed ports share one; then both fall back to their USB
    location, and as a last resort to the device file's name.
    """
    chosen = [i for i in infos if all_ports or is_board(i)]
    serials: dict[str, int] = {}
    for info in chosen:
        sn = _clean(getattr(info, "serial_number", None) or "")
        if sn:
            serials[sn] = serials.get(sn, 0) + 1
    out = []
    for info in chosen:
        sn_raw = getattr(info, "serial_number", None) or None
        sn = _clean(sn_raw or "")
        loc = getattr(info, "location", None) or None
        if sn and serials[sn] == 1:
            name = f"sn-{sn}"
        else:
            name = location_name(loc) or f"dev-{_clean(os.path.basename(info.device))}"
        vid, pid = getattr(info, "vid", None), getattr(info, "pid", None)
        out.append(
            BoardPort(
                name=name,
                device=info.device,
                vid=vid,
                pid=pid,
                bridge=KNOWN_BRIDGES.get((vid, pid), "-") if vid is not None and pid else "-",
                serial_number=sn_raw,
                location=loc,
                description=getattr(info, "description", "") or "",
            )
        )
    return sorted(out, key=lambda p: p.name)


def list_boards(infos: Sequence[Any] | None = None, *, all_ports: bool = False) -> list[BoardPort]:
    """Boards plugged in now (``infos`` replaces ``list_ports.comports()`` in tests)."""
    if infos is None:
        from serial.tools import list_ports

        infos = list_ports.comports()
    return name_ports(infos, all_ports=all_ports)


def is_url(spec: str) -> bool:
    return spec.startswith(URL_SCHEMES)


#: ``HOST:PORT`` after ``socket://`` or ``rfc2217://`` (a host in brackets for IPv6).
_HOST_PORT = re.compile(r"(\[[^\]/]+\]|[^:/\[\]@?#]+):(\d{1,10})")


def check_url(spec: str) -> None:
    """A ``socket://`` or ``rfc2217://`` port names a host and a port in 1..65535, or a
    :class:`HardwareError` names the URL. pyserial's own words for ``socket://h:99999`` were
    its option syntax, ``'debug|info|warning|error'``, at connect."""
    scheme = next((s for s in ("socket://", "rfc2217://") if spec.startswith(s)), None)
    if scheme is None:
        return
    rest = spec.removeprefix(scheme)
    address = rest.split("/", 1)[0].split("?", 1)[0]
    m = _HOST_PORT.fullmatch(address)
    if m is None:
        raise HardwareError(f"{spec}: expected {scheme}HOST:PORT")
    port = int(m.group(2))
    if not 1 <= port <= 65535:
        raise HardwareError(f"{spec}: port {port} is out of range 1..65535")


def resolve(spec: str, infos: Sequence[Any] | None = None) -> str:
    """A port spec -> what ``serial.serial_for_url`` opens; :class:`HardwareError` names it."""
    spec = spec.strip()
    if not spec:
        raise HardwareError("empty port name")
    if is_url(spec):
        check_url(spec)
        return spec
    if spec.startswith("emulated:"):
        raise HardwareError(f"{spec}: emulated boards exist only inside a run ([boards] ports)")
    looks_like_name = spec == "auto" or spec.startswith(("sn-", "usb-", "dev-"))
    if not looks_like_name:
        return spec  # a path; opening it reports a missing device
    boards = list_boards(infos)
    if spec == "auto":
        if len(boards) == 1:
            return boards[0].device
        if not boards:
            raise HardwareError("auto: no ESP32 board found (looked for known USB-UART VID:PIDs)")
        names = ", ".join(b.name for b in boards)
        raise HardwareError(f"auto: {len(boards)} boards found ({names}); name one")
    for b in boards:
        if b.name == spec:
            return b.device
    raise HardwareError(f"{spec}: no such board plugged in (see `scfleet hw list`)")


def expand(specs: Sequence[str], infos: Sequence[Any] | None = None) -> list[tuple[str, str]]:
    """(label, url) for each spec; ``auto`` in a list means every detected board."""
    out: list[tuple[str, str]] = []
    for spec in specs:
        if spec == "auto":
            boards = list_boards(infos)
            out.extend((b.name, b.device) for b in boards)
        else:
            out.append((spec, resolve(spec, infos)))
    return out
