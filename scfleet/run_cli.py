"""``scfleet run``: load a scenario file, pick the target, run, write the run folder."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scfleet_core.errors import (
    EXIT_ENGINE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_THRESHOLDS_FAILED,
    ConfigError,
    TargetError,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a load scenario file",
        description="Run a scenario file against a target (default: the embedded "
        "reference server).",
    )
    p.add_argument("config", help="scenario file (TOML)")
    p.add_argument("--target", metavar="URL", help="base URL of the server under test")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_assignment,
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. scenarios.iot_upload.rate=100",
    )
    p.add_argument(
        "--time-scale",
        type=_finite,
        default=1.0,
        metavar="F",
        help="scale scenario/stage durations and start times (not rates or sleeps)",
    )
    p.add_argument(
        "--out",
        action=_OutAction,
        metavar="DIR|json=FILE|csv=FILE",
        help="run folder (default: runs/<time>-<config>); json=FILE / csv=FILE (repeatable) "
        "also stream every sample in k6's --out json / --out csv format",
    )
    p.set_defaults(streams=[])
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run folder given with --out if it already holds a run",
    )
    p.add_argument(
        "--server-pid",
        type=_pid,
        metavar="PID",
        help="sample this process (and its children) as the server under test",
    )
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    add_k6_flags(p)
    p.set_defaults(func=run_command)


class _OutAction(argparse.Action):
    """``--out DIR`` is the run folder (once); ``--out json=FILE``/``csv=FILE`` are k6's
    per-sample streams (simulator.samples) and may be given beside it."""

    def __call__(self, parser: Any, ns: Any, value: Any, option_string: Any = None) -> None:
        from simulator.samples import parse_out

        try:
            stream = parse_out(str(value))
        except ValueError as exc:
            parser.error(str(exc))
        if stream is None:
            if getattr(ns, self.dest, None) is not None:
                parser.error(
                    f"--out: one run folder only, got {getattr(ns, self.dest)} and {value}"
                )
            setattr(ns, self.dest, value)
            return
        streams = list(getattr(ns, "streams", None) or [])
        if any(s.kind == stream.kind for s in streams):
            parser.error(f"--out {stream.kind}=: given twice")
        ns.streams = [*streams, stream]


def add_k6_flags(p: Any) -> None:
    """k6's habits: quick flags, ``-e``, ``--no-color``, ``--summary-export``."""
    from simulator import quickflags

    quickflags.add_arguments(p)
    p.add_argument("--no-color", action="store_true", help="no colours in the live display")
    p.add_argument(
        "--summary-export",
        metavar="FILE",
        help="also write summary.json (k6's --summary-export document) to FILE",
    )


def _assignment(text: str) -> str:
    """``--set`` values: a usage error (exit 2) when there is no ``key=``."""
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected dotted.key=value, got {text[:60]!r}")
    return text


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text[:60]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text[:60]!r}")
    return value


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a process id, got {text[:60]!r}") from None
    if not 0 < value <= 1 << 22:
        raise argparse.ArgumentTypeError(f"expected a process id 1..{1 << 22}, got {value}")
    return value


class _Signals:
    """SIGTERM behaves as Ctrl-C from the first moment (KeyboardInterrupt: exit 105); while
    results are written both are only remembered, so the folder is never left half-written."""

    def __init__(self) -> None:
        self.deferred = False
        self.received = False
        self.saved: list[tuple[int, Any]] = []

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = True
        if not self.deferred:
            raise KeyboardInterrupt

    def install(self, *, defer: bool = False) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        self.deferred = defer
        for sig in (signal.SIGTERM, signal.SIGINT) if defer else (signal.SIGTERM,):
            old = signal.signal(sig, self._handler)
            if len(self.saved) < 2 and sig not in [s for s, _ in self.saved]:
                self.saved.append((sig, old))

    def restore(self) -> None:
        for sig, old in self.saved:
            signal.signal(sig, old)
        self.saved.clear()


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URL, when nothing listens at the target."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        raise TargetError(f"cannot reach {url}: connection refused") from None
    except TimeoutError:
        raise TargetError(f"cannot reach {url}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise TargetError(f"cannot reach {url}: {exc.strerror or exc}") from None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _seed_embedded_accounts(cfg: Any, data_dir: Path) -> dict[str, Any]:
    """Auth scenarios without an accounts file get accounts seeded into the embedded server.

    The passwords never touch the disk: the server's store gets only their hashes and the
    devices get them from memory (as Secret), so a killed run leaves no password anywhere.
    """
    from reference_server.accounts import create_accounts
    from simulator.config import AuthDevice
    from simulator.devices import Account, device_count_bound

    seeded = {}
    for sc in cfg.scenarios:
        if isinstance(sc.device, AuthDevice) and sc.device.accounts_csv is None:
            n = max(device_count_bound(sc), cfg.server.accounts)
            creds = create_accounts(data_dir, n, prefix=f"{sc.name}-")
            seeded[sc.name] = [Account(user, password) for user, password in creds]
    if cfg.server.accounts and not any(isinstance(s.device, AuthDevice) for s in cfg.scenarios):
        create_accounts(data_dir, cfg.server.accounts)
    return seeded


def run_command(args: argparse.Namespace) -> int:
    signals = _Signals()
    signals.install()
    try:
        return _run_command(args, signals)
    finally:
        signals.restore()


def _run_command(args: argparse.Namespace, signals: _Signals) -> int:
    import shutil

    from simulator.config import load_config, validate_url
    from simulator.output import RunStream, claim_run_dir, default_run_dir, write_run
    from simulator.runner import load_all_accounts

    target = validate_url(args.target, key="--target") if args.target else None
    from simulator import quickflags

    cfg = load_config(
        args.config,
        args.overrides,
        args.time_scale,
        target,
        env=quickflags.env_from_args(args),
        quick=quickflags.from_args(args),
    )
    export = Path(args.summary_export) if args.summary_export else None
    if export is not None and (export.is_dir() or not export.parent.is_dir()):
        raise ConfigError(
            "expected a file in an existing folder", source=f"--summary-export {export}"
        )
    run_dir = (
        Path(args.out) if args.out else default_run_dir(args.config, cfg.output.out_dir or "runs")
    )
    created = claim_run_dir(
        run_dir, overwrite=args.overwrite, key="--out" if args.out else "output.out_dir"
    )
    points = _open_streams(args, cfg)
    effective = {
        "source": cfg.source,
        "time_scale": args.time_scale,
        "overrides": list(args.overrides),
        "config": dict(cfg.raw),
    }

    server = None
    result = None
    try:
        if cfg.target.url is None:
            from simulator.embedded import EmbeddedServer

            data_dir = run_dir / "server"
            data_dir.mkdir(parents=True, exist_ok=True)
            accounts = load_all_accounts(cfg, _seed_embedded_accounts(cfg, data_dir))
            server = EmbeddedServer(data_dir, cfg.server)
            url = server.start()
            if not args.quiet:
                sys.stderr.write(
                    f"scfleet: embedded reference server at {url} (pid {server.pid})\n"
                )
        else:
            url = cfg.target.url
            accounts = load_all_accounts(cfg)  # a bad accounts file is a config error first
            check_reachable(url)
        effective["target"] = url
        stream = RunStream(run_dir, effective)
        pid = server.pid if server else args.server_pid
        result = _execute(cfg, url, args, pid, accounts, stream, points)
        signals.install(defer=True)  # from here on a signal never cuts the writing short
        stream.close(result)
    finally:
        if server is not None:
            server.stop()
        if points is not None:
            points.close()
        if result is None and created:  # failed or interrupted before the run: no empty folder
            shutil.rmtree(run_dir, ignore_errors=True)
    paths = write_run(result, run_dir, effective)
    if export is not None:
        try:
            export.write_bytes(paths["summary.json"].read_bytes())
        except OSError as exc:
            sys.stderr.write(f"scfleet: --summary-export {export}: {exc.strerror or exc}\n")
    sys.stdout.write(paths["summary.txt"].read_text())
    sys.stdout.write(f"\n  run folder: {run_dir}\n")
    sys.stdout.flush()
    if result.error:
        sys.stderr.write(f"scfleet: run ended early: {result.error} (results in {run_dir})\n")
        return EXIT_ENGINE
    if (result.interrupted and not result.aborted) or signals.received:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.thresholds_ok else EXIT_THRESHOLDS_FAILED


def _open_streams(args: argparse.Namespace, cfg: Any) -> Any:
    """``--out json=FILE`` / ``csv=FILE``: the writer, its files opened now (a bad path fails
    before anything starts)."""
    streams = getattr(args, "streams", [])
    if not streams:
        return None
    from simulator.metrics import BUILTIN
    from simulator.samples import PointWriter

    ths = [(t.metric_key, t.expr.source, t.tags) for t in cfg.thresholds]
    return PointWriter(streams, BUILTIN, ths)


def _execute(
    cfg: Any,
    url: str,
    args: argparse.Namespace,
    server_pid: int | None,
    accounts: dict[str, Any],
    stream: Any = None,
    points: Any = None,
) -> Any:
    from simulator.fasthttp import make_transport
    from simulator.progress import make_progress
    from simulator.runner import Environment, build_bank

    bank = build_bank(cfg)
    no_color = getattr(args, "no_color", False)
    progress = None if args.quiet else make_progress(cfg, no_color=no_color)

    async def main() -> Any:
        transport = make_transport(url, cfg.target.timeout, cfg.target.transport)
        env = Environment(
            cfg, transport, bank=bank, accounts=accounts, progress=progress, target=url
        )
        env.registry.sink = points
        attach_samplers(env, cfg, server_pid)
        attach_boards(env, cfg, url)
        if stream is not None:
            env.tick_hooks.append(stream.tick)
        loop = asyncio.get_running_loop()
        presses = 0
        main_task = asyncio.current_task()

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                sys.stderr.write("\nscfleet: stopping (Ctrl-C again to cancel in-flight)\n")
                env.request_stop()
            elif presses == 2:
                env.cancel_inflight()  # the clean-up still runs and results are written
            elif main_task is not None:
                main_task.cancel()  # a third press: give up on the clean-up too

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            loop.add_signal_handler(signal.SIGTERM, on_sigint)
        try:
            return await env.run()
        finally:
            await transport.close()
            if progress is not None:
                progress.close()

    # The fleet's long-lived objects (devices, bank, histograms) never become garbage; moving
    # them out of the collector's sight and collecting young objects less often saves a few
    # percent of CPU per request at thousands of requests per second.
    gc.collect()
    gc.freeze()
    old = gc.get_threshold()
    gc.set_threshold(50_000, old[1], old[2])
    try:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            return runner.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None  # third Ctrl-C: "scfleet: interrupted", exit 105
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def attach_samplers(env: Any, cfg: Any, server_pid: int | None) -> None:
    """Resource samplers: the server process tree, the generator itself, Prometheus."""
    from simulator import monitoring

    monitoring.attach(env, cfg, server_pid)


def attach_boards(env: Any, cfg: Any, url: str) -> None:
    """Hook for ``[boards]``: real and emulated ESP32 boards join the run (hw_bridge.fleet)."""
    if cfg.boards is not None:
        from hw_bridge.fleet import BoardFleet

        env.companions.append(BoardFleet(cfg.boards, cfg, url))


__all__ = ["register", "run_command", "check_reachable", "ConfigError"]
