"""Process entry: listen, announce ``READY http://HOST:PORT`` on stdout, stop cleanly on signals.

The load engine starts this as a child process with ``--port 0`` and reads the ``READY`` line to
learn the port, so that line is printed exactly once, only after the socket is bound and the
analysis workers answer, and flushed at once. SIGTERM/SIGINT close the listener, let running
requests finish, stop the pools and flush the ledger before exiting 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from reference_server.config import ServerConfig, add_server_arguments, config_from_args
from scfleet_core.cli import OneLineParser, forget_caught_interrupt
from scfleet_core.errors import EXIT_OK, ScfleetError

log = logging.getLogger("reference_server")

SHUTDOWN_GRACE_S = 5.0
KEEPALIVE_S = 75.0  # idle keep-alive connections are closed after this (nginx's default)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m reference_server",
        description="SignalCraft-compatible reference server for scfleet load runs.",
    )
    add_server_arguments(parser)
    return parser


def launch_command(data_dir: str | os.PathLike[str], *options: str) -> list[str]:
    """How to start this server as a child process on a free loopback port (it prints
    ``READY URL``); the one place that says it, for scfleet's embedded target and the tests."""
    return [
        sys.executable,
        "-m",
        "reference_server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        *options,
    ]


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _announce(url: str) -> None:
    sys.stdout.write(f"READY {url}\n")
    sys.stdout.flush()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """EOF (or an error) on stdin means the launcher is gone: stop as on SIGTERM."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


async def _serve(config: ServerConfig, announce: Callable[[str], None]) -> None:
    from aiohttp import web

    from reference_server.app import GUARD, create_app
    from reference_server.guard import ConnectionGuard, default_max_connections

    loop = asyncio.get_running_loop()
    app = create_app(config)
    guard = ConnectionGuard(
        loop,
        max_connections=config.max_connections or default_max_connections(config.analysis_workers),
        header_timeout=config.header_timeout_s,
    )
    app[GUARD] = guard
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        keepalive_timeout=KEEPALIVE_S,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.parent_pid is not None:
        from reference_server.lifeline import die_with_parent

        die_with_parent(config.parent_pid, signal.SIGTERM)  # handled above: a graceful stop
    if config.watch_stdin:
        _watch_stdin(loop, stop)
    await runner.setup()
    listener: asyncio.AbstractServer | None = None
    try:
        assert runner.server is not None
        try:  # our own listener: every connection passes the guard before aiohttp sees it
            listener = await loop.create_server(
                guard.factory(runner.server),
                config.host,
                config.port,
                backlog=2048,
                reuse_address=True,
            )
        except OSError as exc:
            raise ScfleetError(
                f"cannot listen on {_url(config.host, config.port)}: {exc.strerror or exc}"
            ) from None
        port = next(s.getsockname()[1] for s in listener.sockets)
        if not stop.is_set():  # a signal during startup: stop without announcing
            announce(_url(config.host, port))
        await stop.wait()
    finally:
        if listener is not None:
            listener.close()  # stop accepting; runner.cleanup() drains the open connections
        await runner.cleanup()


def serve(config: ServerConfig, announce: Callable[[str], None] = _announce) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code. uvloop is used when installed."""
    logging.basicConfig(
        level=logging.INFO if config.access_log else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(_serve(config, announce))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return serve(config_from_args(args))
    except ScfleetError as exc:
        sys.stderr.write(f"reference_server: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C before the loop's own handler was installed
        forget_caught_interrupt()  # python -m: exit 0, not by SIGINT
        return EXIT_OK
