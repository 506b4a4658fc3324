"""``scfleet hw list | provision | monitor``: find boards, configure them, watch them.

``provision`` writes Wi-Fi, target and device ID with the protocol's ``config`` (persisted on the
board, so it survives a reboot); the Wi-Fi key comes from an environment variable or a file and
is never printed — the board answers with ``wifi_key_set`` only. ``monitor`` shows the board's
console with JSON lines turned into short readable lines; anything else passes through.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hw_bridge.boardconfig import SAMPLE_RATES
from hw_bridge.ports import MAX_BAUD, MAX_REPLY_TIMEOUT_S, MIN_BAUD
from scfleet_core.cli import Subparsers, float_min, int_in
from scfleet_core.errors import ConfigError, HardwareError


def register_hw(subs: Subparsers) -> None:
    """Add ``hw list``, ``hw provision`` and ``hw monitor`` (see ``hw_bridge.cli``)."""
    p = subs.add_parser("list", help="list ESP32 boards on USB, with stable names")
    p.add_argument("--all", action="store_true", help="every serial port, not only ESP32 bridges")
    p.add_argument("--json", action="store_true", help="one JSON object per board")
    p.set_defaults(func=cmd_list)

    p = subs.add_parser(
        "provision",
        help="write Wi-Fi, target and device ID to a board running the test firmware",
    )
    p.add_argument("port", help="path, stable name (hw list), auto, socket:// or rfc2217:// URL")
    p.add_argument("--target", required=True, metavar="URL", help="upload URL (or base URL)")
    p.add_argument("--device-id", required=True, metavar="ID")
    p.add_argument("--wifi-ssid", default=None)
    key = p.add_mutually_exclusive_group()
    key.add_argument("--wifi-key-env", metavar="VAR", help="environment variable with the key")
    key.add_argument("--wifi-key-file", type=Path, metavar="FILE", help="file with the key")
    p.add_argument("--sample-rate", type=int_in(*SAMPLE_RATES), default=None)
    p.add_argument("--baud", type=int_in(MIN_BAUD, MAX_BAUD), default=115200)
    p.add_argument(
        "--timeout",
        type=float_min(0.0, strict=True, hi=MAX_REPLY_TIMEOUT_S),
        default=3.0,
        help="seconds to wait for each reply",
    )
    p.set_defaults(func=cmd_provision)

    p = subs.add_parser("monitor", help="show a board's serial lines, readable")
    p.add_argument("port", help="path, stable name, auto, socket:// or rfc2217:// URL")
    p.add_argument("--raw", action="store_true", help="print lines as received")
    p.add_argument("--hello", action="store_true", help="send hello and status first")
    p.add_argument(
        "--duration",
        type=float_min(0.0, strict=True),
        default=None,
        help="stop after this many seconds",
    )
    p.add_argument("--baud", type=int_in(MIN_BAUD, MAX_BAUD), default=115200)
    p.set_defaults(func=cmd_monitor)


# --------------------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    from hw_bridge import ports

    boards = ports.list_boards(all_ports=args.all)
    if args.json:
        for b in boards:
            sys.stdout.write(
                json.dumps(
                    {
                        "name": b.name,
                        "device": b.device,
                        "usb_id": b.usb_id,
                        "bridge": b.bridge,
                        "serial_number": b.serial_number,
                        "location": b.location,
                        "description": b.description,
                    }
                )
                + "\n"
            )
        return 0
    if not boards:
        sys.stdout.write("no ESP32 boards found (known USB-UART bridges: hw_bridge.ports)\n")
        return 0
    sys.stdout.write(render_list(boards))
    return 0


def render_list(boards: list[Any]) -> str:
    rows = [("NAME", "PORT", "USB ID", "BRIDGE", "SERIAL", "LOCATION")]
    rows += [
        (b.name, b.device, b.usb_id, b.bridge, b.serial_number or "-", b.location or "-")
        for b in boards
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


# --------------------------------------------------------------------------- provision


def cmd_provision(args: argparse.Namespace) -> int:
    from hw_bridge import ports
    from hw_bridge.boardconfig import BoardSettings, read_wifi_key
    from simulator.config import IotUploadDevice, validate_url

    target = validate_url(args.target, key="--target")
    if not urlsplit(target).path:  # a base URL: the upload endpoint virtual devices use
        target += IotUploadDevice.endpoint
    if not args.device_id.strip():
        raise ConfigError("must not be empty", key="--device-id")
    key = read_wifi_key(args.wifi_key_env, args.wifi_key_file, env_key="--wifi-key-env")
    if key is not None and args.wifi_ssid is None:
        raise ConfigError("a Wi-Fi key needs --wifi-ssid", key="--wifi-ssid")
    settings = BoardSettings(
        args.device_id, target, args.wifi_ssid, key, sample_rate=args.sample_rate
    )
    url = ports.resolve(args.port)
    reply = asyncio.run(_provision(url, settings.fields(), args.baud, args.timeout))
    cfg = reply.get("config", {}) if isinstance(reply.get("config"), Mapping) else {}
    sys.stdout.write(
        f"{args.port}: provisioned {cfg.get('device_id', args.device_id)} -> "
        f"{cfg.get('target', target)}; wifi_ssid={cfg.get('wifi_ssid', '') or '-'} "
        f"key={'set' if cfg.get('wifi_key_set') else 'not set'} (saved on the board)\n"
    )
    return 0


async def _provision(url: str, fields: dict[str, Any], baud: int, timeout: float) -> dict[str, Any]:
    from hw_bridge.link import BoardReplyError, SerialLink

    link = SerialLink(url, baud=baud)
    await link.open()
    try:
        hello = await link.request("hello", timeout)
        if hello.get("proto") != 1:
            raise HardwareError(f"{url}: board speaks protocol {hello.get('proto')!r}, not 1")
        status = await link.request("status", timeout)
        if status.get("running"):
            await link.request("stop", timeout)
        return await link.request("config", timeout, persist=True, **fields)
    except BoardReplyError as exc:
        raise HardwareError(f"{url}: board refused the config ({exc})") from None
    finally:
        await link.close()
        link.shutdown()


# --------------------------------------------------------------------------- monitor


def describe(msg: Mapping[str, Any]) -> list[str]:
    """Short human lines for one protocol object (a ``results`` batch gives one per item)."""
    t = msg.get("t")
    if t == "result":
        return [_result_line(msg)]
    if t == "results":
        items = msg.get("items")
        if not isinstance(items, list):
            return ["results (malformed)"]
        return [_result_line(i) if isinstance(i, Mapping) else "result (malformed)" for i in items]
    if t == "hello":
        return [
            f"hello: fw {msg.get('fw')} on {msg.get('chip')} {msg.get('mac')}, "
            f"{msg.get('micropython')}, device {msg.get('device_id')}, "
            f"wifi key {'set' if msg.get('wifi_key_set') else 'not set'}"
        ]
    if t == "log":
        return [f"[{msg.get('level', 'info')}] {msg.get('msg', '')}"]
    if t == "error":
        return [f"error {msg.get('code')}: {msg.get('msg')} (id {msg.get('id')})"]
    if t == "done":
        return [f"done run {msg.get('run')}: {_counters(msg)}"]
    if t == "status":
        return [
            f"status: {'running' if msg.get('running') else 'idle'} run {msg.get('run')}, "
            f"wifi {msg.get('wifi')}, up {_int(msg.get('uptime_us')) / 1e6:.1f}s, {_counters(msg)}"
        ]
    if t == "ok":
        cmd = msg.get("cmd")
        extra = ""
        if cmd == "start":
            extra = f" run {msg.get('run')}, every {_int(msg.get('interval_us')) / 1000:g} ms"
        elif cmd == "ping":
            extra = f" board clock {msg.get('board_us')} µs"
        elif cmd == "config" and isinstance(msg.get("config"), Mapping):
            c = msg["config"]
            extra = f" device {c.get('device_id')} -> {c.get('target')}"
        return [f"ok {cmd}{extra}"]
    return [json.dumps(msg, separators=(",", ":"))]


def _int(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _counters(msg: Mapping[str, Any]) -> str:
    keys = ("produced", "sent", "ok", "failed", "retried", "dropped", "buffered")
    return " ".join(f"{k}={msg[k]}" for k in keys if k in msg)


def _result_line(item: Mapping[str, Any]) -> str:
    status = item.get("status")
    lat = _int(item.get("latency_us")) / 1000
    err = item.get("error")
    attempt = item.get("attempt")
    retry = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
    tail = f" {err}" if err else ""
    return f"#{item.get('seq')} {status or 'no answer'} {lat:.1f} ms {item.get('bytes')} B{retry}{tail}"


def cmd_monitor(args: argparse.Namespace) -> int:
    from hw_bridge import ports

    url = ports.resolve(args.port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_monitor(url, args))
    return 0


async def _monitor(url: str, args: argparse.Namespace) -> None:
    from hw_bridge.link import SerialLink

    out = sys.stdout
    closed = asyncio.Event()

    def on_message(msg: dict[str, Any]) -> None:
        lines = [json.dumps(msg, separators=(",", ":"))] if args.raw else describe(msg)
        for line in lines:
            out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        out.flush()

    def on_text(text: str) -> None:
        if text.strip():
            out.write(f"{time.strftime('%H:%M:%S')} | {text}\n")
            out.flush()

    def on_closed(reason: str) -> None:
        out.write(f"{time.strftime('%H:%M:%S')} port closed: {reason}\n")
        closed.set()

    link = SerialLink(
        url, baud=args.baud, on_message=on_message, on_text=on_text, on_closed=on_closed
    )
    await link.open()
    try:
        if args.hello:
            for cmd in ("hello", "status"):
                try:
                    on_message(await link.request(cmd, 3.0))
                except HardwareError as exc:
                    out.write(f"{time.strftime('%H:%M:%S')} {exc}\n")
        with contextlib.suppress(TimeoutError):  # --duration is up
            async with asyncio.timeout(args.duration):  # not wait_for: it can drop a cancel
                await closed.wait()
    finally:
        await link.close()
        link.shutdown()
