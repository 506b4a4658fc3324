"""Server options: one argparse definition shared by ``python -m reference_server`` and
``scfleet serve``, parsed into a frozen :class:`ServerConfig`.

Kept free of aiohttp/numpy imports so ``scfleet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scfleet_core.cli import float_min, int_in
from scfleet_core.errors import ConfigError
from scfleet_core.limits import MAX_UPLOAD_BYTES, MIN_UPLOAD_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_ANALYSIS_WORKERS = 2
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_SESSION_TTL_S = 3600.0
DEFAULT_SAMPLE_RATES = (16000,)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; built once from the command line."""

    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = 0
    analysis_workers: int = DEFAULT_ANALYSIS_WORKERS
    extra_cost_ms: float = 0.0
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    session_ttl_s: float = DEFAULT_SESSION_TTL_S
    sample_rates: tuple[int, ...] = DEFAULT_SAMPLE_RATES
    secret_key_file: Path | None = None
    access_log: bool = False
    profile_seed: int = 0
    unsafe_ack_before_commit: bool = False  # benchmarks only: the pre-0.x behaviour
    header_timeout_s: float = 15.0  # a request head must arrive within this
    body_timeout_s: float = 60.0  # a request body must arrive within this
    max_connections: int = 0  # 0: as many as the descriptor limit allows
    parent_pid: int | None = None  # exit (gracefully) when this parent process is gone
    watch_stdin: bool = False  # exit (gracefully) when stdin reaches EOF: the parent is gone

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def users_path(self) -> Path:
        return self.data_dir / "users.sqlite"


def _sample_rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of rates: {text!r}") from None
    if not rates or any(r < 1000 or r > 384000 for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be within 1000..384000 Hz: {text!r}")
    return rates


def _host(text: str) -> str:
    """An address to bind: an empty one (``--host "$HOST"`` with HOST unset) bound every
    interface, IPv4 and IPv6 on different free ports, and was announced as ``http://:PORT``."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty address would listen on every interface; give 0.0.0.0 (or ::) for that"
        )
    return text


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options; ``scfleet serve`` and ``python -m reference_server`` share them."""
    parser.add_argument(
        "--host", type=_host, default=DEFAULT_HOST, help="address to bind (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int_in(0, 65535), default=0, help="port; 0 picks a free one (default)"
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="folder for the ledger, users and signing key"
    )
    parser.add_argument(
        "--analysis-workers",
        type=int_in(1, 256),
        default=DEFAULT_ANALYSIS_WORKERS,
        help="analysis worker processes (default %(default)s)",
    )
    parser.add_argument(
        "--extra-cost-ms",
        type=float_min(0.0, strict=False),
        default=0.0,
        help="ms of busy CPU work per analysis (wall clock), emulating a heavier model (default 0)",
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=int_in(MIN_UPLOAD_BYTES, MAX_UPLOAD_BYTES),
        default=DEFAULT_MAX_UPLOAD_BYTES,
        help="largest accepted upload body or audio file (default 10 MiB, at most 1 GiB)",
    )
    parser.add_argument(
        "--session-ttl",
        type=float_min(0.0, strict=True),
        default=DEFAULT_SESSION_TTL_S,
        help="session cookie lifetime in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--sample-rates",
        type=_sample_rates,
        default=DEFAULT_SAMPLE_RATES,
        help="accepted X-Sample-Rate values, comma-separated (default 16000)",
    )
    parser.add_argument(
        "--secret-key-file",
        type=Path,
        default=None,
        help="session signing key; default: generated once into DATA_DIR/secret.key (0600)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: it costs CPU)"
    )
    parser.add_argument(
        "--unsafe-ack-before-commit",
        action="store_true",
        help="answer uploads before their ledger row is committed; a crash then loses "
        "acknowledged uploads (only to measure what commit-before-ack costs)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float_min(0.0, strict=True),
        default=15.0,
        help="seconds a client has to send a request head, from connecting or from the first "
        "byte of its next request (default %(default)s); slow ones are closed",
    )
    parser.add_argument(
        "--body-timeout",
        type=float_min(0.0, strict=True),
        default=60.0,
        help="seconds a client has to send a request body (default %(default)s): 408",
    )
    parser.add_argument(
        "--max-connections",
        type=int_in(0, 1_000_000),
        default=0,
        help="open connections at most; beyond it the oldest idle one is closed, or the new "
        "one gets 503 (default 0: what the descriptor limit allows)",
    )
    parser.add_argument(
        "--parent-pid",
        type=int_in(1, (1 << 31) - 1),  # a pid_t: os.kill overflowed past it
        default=None,
        help="stop when this process, our parent (the launcher), is gone, even if it was killed "
        "with -9; a pid that is not the parent is an error",
    )
    parser.add_argument(
        "--watch-stdin",
        action="store_true",
        help="stop when stdin reaches EOF (the launcher keeps a pipe open while it lives)",
    )
    parser.add_argument(
        "--profile-seed",
        type=int_in(0),  # a negative one was a traceback once the server was starting
        default=0,
        help="seed of the synthetic normal-sound profile the anomaly score compares against",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Build the config and check what argparse cannot: that the data dir is usable."""
    data_dir = Path(args.data_dir).expanduser()
    key_file = Path(args.secret_key_file).expanduser() if args.secret_key_file else None
    config = ServerConfig(
        data_dir=data_dir,
        host=args.host,
        port=args.port,
        analysis_workers=args.analysis_workers,
        extra_cost_ms=args.extra_cost_ms,
        max_upload_bytes=args.max_upload_bytes,
        session_ttl_s=args.session_ttl,
        sample_rates=tuple(args.sample_rates),
        secret_key_file=key_file,
        access_log=bool(args.access_log),
        profile_seed=args.profile_seed,
        unsafe_ack_before_commit=bool(args.unsafe_ack_before_commit),
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        max_connections=args.max_connections,
        parent_pid=args.parent_pid,
        watch_stdin=bool(args.watch_stdin),
    )
    if config.parent_pid is not None:
        check_parent(config.parent_pid)
    prepare_data_dir(config.data_dir)
    if key_file is not None and not key_file.is_file():
        raise ConfigError("not a readable file", source=str(key_file), key="--secret-key-file")
    return config


def check_parent(pid: int) -> None:
    """``--parent-pid`` watches our parent (the kernel's parent-death signal, ``getppid``):
    another process cannot be watched so, and a server told to watch one stopped at once,
    exit 0 and not a word. Refused here, naming the pid, before anything starts. A launcher
    that died before this check leaves the same error in its log, which no one reads."""
    parent = os.getppid()
    if pid == parent:
        return
    problem = f"not this server's parent (pid {parent})"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        problem = "no such process (the launcher is gone?)"
    except OSError:  # it exists, and belongs to someone else
        pass
    raise ConfigError(
        f"{pid}: {problem}; only the process that started the server can be watched",
        key="--parent-pid",
    )


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data dir if needed and prove it is writable, so failures surface at start."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create data dir: {exc.strerror or exc}", source=str(data_dir)
        ) from None
    if not data_dir.is_dir():
        raise ConfigError("data dir is not a directory", source=str(data_dir))
    try:
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise ConfigError(
            f"data dir is not writable: {exc.strerror or exc}", source=str(data_dir)
        ) from None
