"""The ``[boards]`` table of a scenario file, read here rather than by the engine.

The engine carries the table unread (``RunConfig.sections["boards"]``, see
``simulator.config.model.COMPANION_SECTIONS``); the composition root (``scfleet.api``) has it
checked by :func:`parse_boards` when the file is loaded, so a bad key is the same one-line
``ConfigError`` naming the file and ``boards.KEY`` (exit 104) before any target is contacted,
and :class:`~hw_bridge.fleet.BoardFleet` is built from the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from hw_bridge.ports import MAX_BAUD, MIN_BAUD, check_url
from scfleet_core.errors import HardwareError
from simulator.config import MAX_WAIT, RunConfig, validate_url
from simulator.config.sections import resolve_path
from simulator.config.table import Table, id_pattern, text_problem

#: The table's name in a scenario file (one of the engine's companion sections).
SECTION = "boards"


@dataclass(frozen=True)
class BoardsConfig:
    """``[boards]``: ESP32 boards (real or emulated) joining the run as ``kind=physical``.

    Each board follows one iot_upload scenario's schedule (start time, duration) at ``rate``
    uploads/s, by default that scenario's mean rate per pre-allocated device (hw_bridge.fleet).
    """

    ports: tuple[str, ...] = ()  # paths, stable names, auto, socket://, rfc2217://, emulated:N
    registry: Path | None = None  # boards.toml: board -> device ID
    scenario: str = ""  # the iot_upload scenario followed ("" = the first one)
    rate: float | None = None  # uploads/s per board; None = the scenario's per-device share
    device_id_pattern: str = "esp32-hw-{n:03d}"  # boards the registry does not name
    target: str | None = None  # base URL the boards upload to (default: the run's target)
    wifi_ssid: str = ""
    wifi_key_env: str | None = None  # the key comes from this environment variable...
    wifi_key_file: Path | None = None  # ...or this file; never from the scenario file
    emulator_protocol: Literal["socket", "rfc2217"] = "socket"
    silence: float = 5.0  # no line for this long: ask `status`
    status_timeout: float = 2.0  # no answer to it either: the board is lost
    baud: int = 115200


def parse_boards(cfg: RunConfig) -> BoardsConfig | None:
    """The run's ``[boards]`` table checked and typed; None when the file has none."""
    data = cfg.sections.get(SECTION)
    if data is None:
        return None
    t = Table(data, SECTION, cfg.source)
    raw_ports = t.get("ports", [])
    if (
        not isinstance(raw_ports, list)
        or len(raw_ports) > 256
        or not all(isinstance(p, str) and p and not text_problem(p, 1024, False) for p in raw_ports)
    ):
        raise t.error("ports", 'expected a list of ports, e.g. ["emulated:4", "/dev/ttyUSB0"]')
    for p in raw_ports:
        if p.startswith("emulated:"):
            n = p.removeprefix("emulated:")
            if not n.isdigit() or not 1 <= int(n) <= 64:
                raise t.error("ports", f"{p!r}: expected emulated:N with N in 1..64")
        try:
            check_url(p)
        except HardwareError as exc:
            raise t.error("ports", str(exc)) from None
    registry = t.optional_string("registry")
    if not raw_ports and registry is None:
        raise t.error("ports", "give ports, a registry file, or both")
    name = t.string("scenario", "")
    iot = [s for s in cfg.scenarios if s.device.boards_follow]
    chosen = next((s for s in iot if s.name == name), None) if name else (iot[0] if iot else None)
    if chosen is None:
        what = f"no iot_upload scenario named {name!r}" if name else "no iot_upload scenario"
        raise t.error("scenario", f"{what}; boards upload like iot_upload devices")
    rate = t.get("rate")
    if rate is not None:
        rate = t.number("rate", positive=True)
        if not 0.001 <= rate <= 1000:
            raise t.error("rate", f"expected 0.001..1000 uploads/s per board, got {rate:g}")
    pattern = id_pattern(t, "device_id_pattern", BoardsConfig.device_id_pattern, 1, 256)
    target = t.optional_string("target")
    if target is not None:
        target = validate_url(target, source=t.source, key=t.key("target"))
    key_env = t.optional_string("wifi_key_env")
    key_file = t.optional_string("wifi_key_file")
    if key_env and key_file:
        raise t.error("wifi_key_file", "give wifi_key_env or wifi_key_file, not both")
    if t.has("wifi_key"):
        raise t.error("wifi_key", "keys do not go in scenario files; use wifi_key_env")
    protocol = t.choice("emulator_protocol", ("socket", "rfc2217"), "socket")
    bc = BoardsConfig(
        ports=tuple(raw_ports),
        registry=resolve_path(registry, t.source) if registry else None,
        scenario=chosen.name,
        rate=rate,
        device_id_pattern=pattern,
        target=target,
        wifi_ssid=t.string("wifi_ssid", "", max_len=32),
        wifi_key_env=key_env,
        wifi_key_file=resolve_path(key_file, t.source) if key_file else None,
        emulator_protocol=cast(Literal["socket", "rfc2217"], protocol),
        silence=t.duration("silence", "5s", positive=True, maximum=MAX_WAIT),
        status_timeout=t.duration("status_timeout", "2s", positive=True, maximum=MAX_WAIT),
        baud=t.integer("baud", 115200, minimum=MIN_BAUD, maximum=MAX_BAUD),
    )
    t.finish()
    return bc


__all__ = ["SECTION", "BoardsConfig", "parse_boards"]
