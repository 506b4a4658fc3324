"""``scfleet hw flash``: the parser and the handler (the files, the key and the ports it is
given become :class:`~hw_bridge.flash.jobs.FlashJob` values for the runner)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw_bridge.boardconfig import read_wifi_key
from hw_bridge.flash.jobs import DEFAULT_BAUD, BoardConfig, FlashJob, Image, Tuning
from hw_bridge.mpyc import version_arg
from hw_bridge.ports import MAX_BAUD, MAX_REPLY_TIMEOUT_S, MIN_BAUD
from scfleet_core.cli import Subparsers, float_min, int_in
from scfleet_core.errors import ConfigError, HardwareError


def parse_image_arg(text: str) -> tuple[int, Path]:
    """``ADDR:FILE`` with ADDR in hex (0x...) or decimal."""
    addr, sep, path = text.partition(":")
    if not sep or not path:
        raise ConfigError("expected ADDR:FILE, e.g. 0x10000:app.bin", key=f"--image {text}")
    try:
        address = int(addr, 0)
    except ValueError:
        raise ConfigError(f"bad address {addr!r}", key=f"--image {text}") from None
    if address % 0x1000:
        raise ConfigError(f"address {address:#x} is not 4 KiB aligned", key=f"--image {text}")
    return address, Path(path)


#: The most an image may hold: more than an ESP32's largest flash (16 MiB; 32 MiB on some
#: S3 modules). Read whole, ``--firmware /dev/zero`` ran until the OOM killer ended it.
MAX_IMAGE_BYTES = 32 * 2**20


def read_file(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=str(path)) from None
    if len(data) > MAX_IMAGE_BYTES:
        raise ConfigError(
            f"{what} larger than {MAX_IMAGE_BYTES // 2**20} MiB: no board's flash holds it",
            source=str(path),
        )
    return data


def load_app_files(app_dir: Path | None) -> dict[str, bytes]:
    """The firmware app: ``firmware.app_files()`` when it exists, else every file in a dir."""
    if app_dir is None:
        try:
            import firmware

            pairs = firmware.app_files()
        except (ImportError, AttributeError):
            raise ConfigError(
                "firmware.app_files() is not importable (an editable install older than "
                "firmware/ needs `pip install -e .`); pass --app-dir with the app files"
            ) from None
        return {
            "/" + str(board_path).lstrip("/"): Path(src).read_bytes() for board_path, src in pairs
        }
    if not app_dir.is_dir():
        raise ConfigError("not a directory", source=str(app_dir), key="--app-dir")
    return {
        "/" + p.relative_to(app_dir).as_posix(): p.read_bytes()
        for p in sorted(app_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def register_hw(subs: Subparsers) -> None:
    """Add ``hw flash`` to the ``hw`` group (see ``hw_bridge.cli``)."""
    p = subs.add_parser(
        "flash",
        help="flash MicroPython, the app filesystem and images onto boards",
        description="``scfleet hw flash``: write MicroPython, the app filesystem and any images "
        "to many boards.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--port", action="append", metavar="PORT", help="path, URL or board name; repeatable"
    )
    where.add_argument("--all", action="store_true", help="every detected ESP32 board")
    p.add_argument("--firmware", type=Path, metavar="BIN", help="official MicroPython .bin")
    p.add_argument("--image", action="append", default=[], metavar="ADDR:FILE")
    p.add_argument("--app-dir", type=Path, help="app files (default: firmware.app_files())")
    p.add_argument("--no-app", action="store_true", help="write no filesystem image")
    p.add_argument(
        "--py", action="store_true", help="ship the app as .py sources (default: .mpy bytecode)"
    )
    p.add_argument(
        "--micropython",
        type=version_arg,
        metavar="X.Y.Z",
        help="the firmware's MicroPython version for mpy-cross (default: read from --firmware)",
    )
    p.add_argument("--device-id-pattern", default="esp32-{n:06d}")
    p.add_argument("--target", default="http://127.0.0.1:8080", metavar="URL")
    p.add_argument("--wifi-ssid")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--wifi-key-env", metavar="VAR", help="env var holding the Wi-Fi key")
    key.add_argument("--wifi-key-file", type=Path, metavar="FILE")
    p.add_argument("--no-compress", action="store_true")
    p.add_argument("--baud", type=int_in(MIN_BAUD, MAX_BAUD), default=DEFAULT_BAUD)
    p.add_argument("--before", default="default-reset", choices=["default-reset", "no-reset"])
    p.add_argument(
        "--after", default="hard-reset", choices=["hard-reset", "no-reset", "no-reset-stub"]
    )
    p.add_argument(
        "--timeout",
        type=float_min(0.0, strict=True, hi=MAX_REPLY_TIMEOUT_S),
        default=3.0,
        help="esptool per-command timeout, seconds",
    )
    # esptool reads 0 as "try for ever": a hang on a board that never answers
    p.add_argument("--connect-attempts", type=int_in(1, 100), default=7)
    p.set_defaults(func=cmd_flash)


def cmd_flash(args: argparse.Namespace) -> int:
    from hw_bridge import images
    from hw_bridge import ports as port_names

    if args.all:
        ports = [b.device for b in port_names.list_boards()]
    else:  # paths, URLs, or the stable names `scfleet hw list` shows
        ports = [port_names.resolve(spec) for spec in args.port]
    if not ports:
        raise HardwareError("no ESP32 boards found (looked for known USB-UART VID:PIDs)")
    if len(set(ports)) != len(ports):
        raise ConfigError("a port is listed twice", key="--port")
    try:
        args.device_id_pattern.format(n=1, mac="0")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"bad pattern ({exc})", key="--device-id-pattern") from None

    firmware = None
    if args.firmware is not None:
        data = read_file(args.firmware, "firmware")
        try:
            images.chip_of_image(data, name=str(args.firmware))
        except images.ImageError as exc:
            raise ConfigError(str(exc), key="--firmware") from None
        firmware = Image(0, data, args.firmware.name)
    extra = []
    for text in args.image:
        address, path = parse_image_arg(text)
        extra.append(Image(address, read_file(path, "image"), path.name))
    if firmware is None and not extra:
        raise ConfigError("nothing to flash: give --firmware and/or --image", key="--firmware")

    app_files = None
    config = None
    if firmware is not None and not args.no_app:
        from hw_bridge import mpyc

        version = (
            mpyc.parse_version(args.micropython)
            if args.micropython
            else mpyc.version_of_image(firmware.data)
        )
        app_files = mpyc.ship(load_app_files(args.app_dir), version, py=args.py)
        config = BoardConfig(
            device_id_pattern=args.device_id_pattern,
            target=args.target,
            wifi_ssid=args.wifi_ssid,
            wifi_key=read_wifi_key(args.wifi_key_env, args.wifi_key_file, env_key="--wifi-key-env"),
        )
    jobs = [
        FlashJob(
            port=port,
            index=i,
            firmware=firmware,
            images=tuple(extra),
            app_files=app_files,
            config=config,
            baud=args.baud,
            compress=not args.no_compress,
            before=args.before,
            after=args.after,
        )
        for i, port in enumerate(ports, start=1)
    ]
    tuning = Tuning(timeout=args.timeout, connect_attempts=args.connect_attempts)
    from hw_bridge.flash.runner import flash_boards
    from hw_bridge.flash.view import render_table

    results = flash_boards(jobs, tuning=tuning)
    render_table(results, sys.stdout, rich=sys.stdout.isatty())
    failed = [r for r in results if not r.ok]
    if failed:
        names = ", ".join(r.port for r in failed)
        raise HardwareError(f"{len(failed)} of {len(results)} boards failed: {names}")
    return 0
