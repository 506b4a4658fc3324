"""``scfleet run``: load a scenario file, pick the target, run, write the run folder."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from scfleet_core.cli import Subparsers
from scfleet_core.errors import (
    EXIT_ENGINE,
    EXIT_INTERRUPTED,
    ConfigError,
)

if TYPE_CHECKING:
    from scfleet.api import RunOutcome
    from simulator.config import RunConfig


def register(sub: Subparsers) -> None:
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
        metavar="DIR|json=FILE|csv=FILE|prometheus=[HOST:]PORT",
        help="run folder (default: runs/<time>-<config>); json=FILE / csv=FILE (repeatable) "
        "also stream every sample in k6's --out json / --out csv format; "
        "prometheus=[HOST:]PORT serves the live metrics on /metrics (loopback by default)",
    )
    p.set_defaults(streams=[], prometheus=None)
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
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N|auto",
        help='processes running the scenarios ("auto": one per core; default: [run] workers, '
        'else "auto"; 1: this process only); one merged run folder',
    )
    p.add_argument(
        "--cluster",
        type=_cluster,
        metavar="ray://HOST:PORT|HOST:PORT|auto",
        help="run the workers as Ray actors spread over this cluster's nodes (auto: "
        "RAY_ADDRESS; --workers auto: one per cluster CPU); needs the 'cluster' extra",
    )
    p.add_argument(
        "--dashboard",
        nargs="?",
        const=f"127.0.0.1:{5665}",
        type=_dashboard,
        metavar="[HOST:]PORT",
        help="serve a live page of the run (charts, stage table, verdict so far) on "
        "http://HOST:PORT/ (default 127.0.0.1:5665, k6's port)",
    )
    p.add_argument(
        "--linger",
        "-l",
        action="store_true",
        help="after the run, keep --out prometheus= serving its final values until Ctrl-C "
        "or SIGTERM (k6's --linger)",
    )
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    add_k6_flags(p)
    p.set_defaults(func=run_command)


class _OutAction(argparse.Action):
    """``--out DIR`` is the run folder (once); ``--out json=FILE``/``csv=FILE`` are k6's
    per-sample streams (simulator.report.streams) and may be given beside it."""

    def __call__(self, parser: Any, ns: Any, value: Any, option_string: Any = None) -> None:
        from simulator.report.streams import parse_out

        if str(value).startswith("prometheus="):
            from simulator.run.prometheus import parse_endpoint

            if ns.prometheus is not None:
                parser.error("--out prometheus=: given twice")
            try:
                ns.prometheus = parse_endpoint(str(value)[len("prometheus=") :])
            except ValueError as exc:
                parser.error(f"--out prometheus={exc}")
            return
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


def load_args(args: argparse.Namespace) -> RunConfig:
    """The scenario file as ``run`` and ``inspect`` load it from their common flags
    (``--set``, ``--time-scale``, ``--target``, ``-e``, k6's quick flags): scfleet.api.load."""
    from scfleet import api
    from simulator.config import quickflags

    return api.load(
        args.config,
        overrides=args.overrides,
        time_scale=args.time_scale,
        target=args.target,
        env=quickflags.env_from_args(args),
        quick=quickflags.from_args(args),
        no_thresholds=getattr(args, "no_thresholds", False),
    )


def add_k6_flags(p: Any) -> None:
    """k6's habits: quick flags, ``-e``, ``--no-color``, ``--summary-export``,
    ``--no-thresholds``."""
    from simulator.config import quickflags

    quickflags.add_arguments(p)
    p.add_argument("--no-color", action="store_true", help="no colours in the live display")
    p.add_argument(
        "--no-thresholds",
        action="store_true",
        help="don't run thresholds (k6's flag): none is judged, so none fails the run (exit 0 "
        "where it would be 99) or aborts it (abort_on_fail), and none is refused at load (a bad "
        "expression or an unknown metric is left out, as k6 parses none then); the summary and "
        "--summary-export have none; the stage table's knee and verdict judge each stage by "
        "its defaults (http_req_failed rate<0.01, http_req_duration p(95)<2000), as for a "
        "file without [thresholds]",
    )
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


def _workers(text: str) -> int | str:
    from simulator.config.model import MAX_WORKERS

    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a number or "auto", got {text[:60]!r}'
        ) from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_WORKERS} workers, got {value}")
    return value


def _cluster(text: str) -> str:
    from simulator.config.sections import cluster_address

    try:
        return cluster_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dashboard(text: str) -> Any:
    from simulator.report.dashboard import DEFAULT_PORT
    from simulator.run.prometheus import parse_endpoint

    try:
        return parse_endpoint(text, default_port=DEFAULT_PORT)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        for sig in (signal.SIGTERM, signal.SIGINT):  # the originals, before the run's own
            if sig not in [s for s, _ in self.saved]:
                self.saved.append((sig, signal.getsignal(sig)))
        for sig in (signal.SIGTERM, signal.SIGINT) if defer else (signal.SIGTERM,):
            signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, old in self.saved:
            signal.signal(sig, old)
        self.saved.clear()


def run_command(args: argparse.Namespace) -> int:
    signals = _Signals()
    signals.install()
    try:
        return _run_command(args, signals)
    finally:
        signals.restore()


def _run_command(args: argparse.Namespace, signals: _Signals) -> int:
    from scfleet import api

    cfg = load_args(args)
    export = check_export(args.summary_export) if args.summary_export else None
    outcome = api.run(
        cfg,
        out=args.out,
        overwrite=args.overwrite,
        server_pid=args.server_pid,
        streams=getattr(args, "streams", []),
        prometheus=getattr(args, "prometheus", None),
        dashboard=getattr(args, "dashboard", None),
        quiet=args.quiet,
        no_color=getattr(args, "no_color", False),
        effective={"time_scale": args.time_scale, "overrides": list(args.overrides)},
        # from here on a signal never cuts the writing short
        on_finished=lambda: signals.install(defer=True),
        workers=args.workers,
        linger=getattr(args, "linger", False),
        cluster=args.cluster,
        no_thresholds=getattr(args, "no_thresholds", False),
    )
    try:
        return _report(args, outcome, signals, export)
    finally:
        outcome.close_live()


def check_export(text: str) -> Path:
    """``--summary-export FILE`` as far as it can be known writable before the run (run and
    inspect alike): a file (or device) in an existing folder a file can be made in, not a
    symlink loop. Before, those were found only after the whole run, which then exited 0."""
    import tempfile

    export = Path(text)
    source = f"--summary-export {export}"
    try:
        if export.is_dir() or not export.parent.is_dir():
            raise ConfigError("expected a file in an existing folder", source=source)
        with contextlib.suppress(FileNotFoundError):
            export.stat()
        if not export.exists():  # it will be made: somewhere a file can be made
            with tempfile.TemporaryFile(dir=export.parent):
                pass
    except OSError as exc:
        raise ConfigError(f"{exc.strerror or exc}", source=source) from None
    return export


def _export_summary(outcome: RunOutcome, export: Path) -> bool:
    """``--summary-export``: a copy of summary.json, or, when no run folder could be written,
    the same document from memory (before, it was skipped without a word); False when it
    could not be written (the run's exit is then not 0)."""
    from simulator.report.output import summary_json_of

    try:
        if "summary.json" in outcome.files:
            data = outcome.files["summary.json"].read_bytes()
        else:
            data = summary_json_of(outcome.result).encode()
        with _open_export(export) as fh:
            fh.write(data)
    except OSError as exc:
        why = "a FIFO no process reads" if exc.errno == errno.ENXIO else exc.strerror or exc
        sys.stderr.write(f"scfleet: --summary-export {export}: {why}\n")
        return False
    return True


def _open_export(export: Path) -> BinaryIO:
    """``export`` opened to be written, without waiting for a reader: a named FIFO no process
    has open fails at once (ENXIO). Before, the open blocked until one came, for ever, with
    SIGINT/SIGTERM deferred while results are written: a run that could not be stopped."""
    fd = os.open(export, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o666)
    os.set_blocking(fd, True)  # a reader is there: write all of it, as write_bytes did
    return os.fdopen(fd, "wb")


def _report(
    args: argparse.Namespace, outcome: RunOutcome, signals: _Signals, export: Path | None
) -> int:
    """Print the summary; with ``--linger``, wait for Ctrl-C/SIGTERM with /metrics still up."""
    import time

    result, run_dir = outcome.result, outcome.run_dir
    exported = export is None or _export_summary(outcome, export)
    if "summary.txt" in outcome.files:
        sys.stdout.write(outcome.files["summary.txt"].read_text())
        sys.stdout.write(f"\n  run folder: {run_dir}\n")
    else:  # nothing could be written: the figures live on in the terminal, at least
        from simulator.report.output import summary_text_of

        sys.stdout.write(summary_text_of(result))
    sys.stdout.flush()
    if outcome.unwritten:
        where = (
            f"the results are in {run_dir} instead"
            if outcome.files
            else "the results were not written (the summary above is all there is)"
        )
        sys.stderr.write(f"scfleet: cannot write the run folder ({outcome.unwritten}); {where}\n")
    if result.error:
        sys.stderr.write(f"scfleet: run ended early: {result.error} (results in {run_dir})\n")
    if signals.received and outcome.exit_code != EXIT_ENGINE:
        return EXIT_INTERRUPTED
    if outcome.live:
        urls = ", ".join(out.url for out in outcome.live)
        sys.stderr.write(f"scfleet: --linger: the run's final metrics on {urls} until Ctrl-C\n")
        sys.stderr.flush()
        while not signals.received:  # SIGINT/SIGTERM are deferred: they only set the flag
            time.sleep(0.1)
    elif getattr(args, "linger", False):
        sys.stderr.write("scfleet: --linger: no --out prometheus= to keep serving\n")
    if not exported and outcome.exit_code == 0:
        return EXIT_ENGINE  # the file asked for is not there: as for the run folder
    return outcome.exit_code


__all__ = ["register", "run_command", "ConfigError"]
