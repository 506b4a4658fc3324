"""``scfleet hw deploy``: the parser, the handler and its one line per board (the work is
:mod:`hw_bridge.deploy`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw_bridge.boardconfig import CONFIG_PATH
from hw_bridge.deploy import DeployResult, deploy_boards
from hw_bridge.ports import MAX_BAUD, MAX_REPLY_TIMEOUT_S, MIN_BAUD
from scfleet_core.cli import Subparsers, float_min, int_in
from scfleet_core.errors import ConfigError, HardwareError


def describe(r: DeployResult) -> str:
    """One line per board, for the terminal."""
    if not r.ok:
        return f"{r.port}: FAILED: {r.error.removeprefix(r.port + ': ')}"
    mode = {True: "raw-paste", False: "raw REPL", None: "-"}[r.raw_paste]
    parts = [
        f"{r.port}: wrote {len(r.written)} files ({r.bytes_written} B, {mode})",
        f"{len(r.unchanged)} unchanged ({r.compared})",
    ]
    if r.fw is not None:
        parts.append(f"app restarted, fw {r.fw}")
    return ", ".join(parts) + f" in {r.seconds:.1f} s"


def register_hw(subs: Subparsers) -> None:
    """Add ``hw deploy`` to the ``hw`` group (see ``hw_bridge.cli``)."""
    p = subs.add_parser(
        "deploy",
        help="copy changed app files to boards over the raw REPL, then soft-reset",
        description="Copy only the changed app files onto boards over MicroPython's raw REPL "
        "(raw-paste mode when the board has it), then soft-reset so main.py runs the new app. "
        "/scfw_config.json (the Wi-Fi key) is never read and only written with "
        "--overwrite-config.",
    )
    p.add_argument("ports", nargs="+", metavar="PORT", help="path, stable name, auto or URL")
    p.add_argument("--app-dir", type=Path, help="app files (default: firmware.app_files())")
    p.add_argument("--force", action="store_true", help="write every file, changed or not")
    p.add_argument(
        "--overwrite-config",
        action="store_true",
        help=f"also write {CONFIG_PATH} from --app-dir (it holds the Wi-Fi key)",
    )
    p.add_argument("--no-raw-paste", action="store_true", help="plain raw REPL only")
    p.add_argument(
        "--py",
        action="store_true",
        help="ship .py sources (default: .mpy built by mpy-cross for the board's MicroPython)",
    )
    p.add_argument("--no-reset", action="store_true", help="stay at the REPL, no soft reset")
    p.add_argument("--baud", type=int_in(MIN_BAUD, MAX_BAUD), default=115200)
    p.add_argument(
        "--timeout",
        type=float_min(0.0, strict=True, hi=MAX_REPLY_TIMEOUT_S),
        default=5.0,
        help="seconds to wait for each reply",
    )
    p.set_defaults(func=cmd_deploy)


def load_files(app_dir: Path | None, *, overwrite_config: bool = False) -> dict[str, bytes]:
    """The files to deploy (as ``hw flash`` finds them), without the board config unless asked."""
    from hw_bridge.flash.cli import load_app_files

    files = load_app_files(app_dir)
    if not overwrite_config:
        files.pop(CONFIG_PATH, None)
    if not files:
        raise ConfigError("no app files to deploy", source=str(app_dir), key="--app-dir")
    return files


def cmd_deploy(args: argparse.Namespace) -> int:
    from hw_bridge import ports as port_names

    urls = [port_names.resolve(spec) for spec in args.ports]
    if len(set(urls)) != len(urls):
        raise ConfigError("a port is listed twice", key="PORT")
    files = load_files(args.app_dir, overwrite_config=args.overwrite_config)
    results = deploy_boards(
        urls,
        files,
        baud=args.baud,
        timeout=args.timeout,
        raw_paste=not args.no_raw_paste,
        force=args.force,
        reset=not args.no_reset,
        py=args.py,
    )
    failed = [r for r in results if not r.ok]
    if len(results) == 1 and failed:
        raise HardwareError(failed[0].error)
    for r in results:
        (sys.stderr if not r.ok else sys.stdout).write(describe(r) + "\n")
    if failed:
        names = ", ".join(r.port for r in failed)
        raise HardwareError(f"{len(failed)} of {len(results)} boards failed: {names}")
    return 0
