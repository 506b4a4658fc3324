"""Shared fixtures for every area's tests."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from raw_http import Counting, counting, serving

from scfleet.embedded import EmbeddedServer
from simulator.config import EmbeddedServerConfig


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Our pytest plugin (``fleet``, ``scfleet_server``, ``emulated_boards``) comes through its
    ``pytest11`` entry point; a venv installed before the entry point existed gets it here, once
    (registering the same module twice is an error, so never through ``pytest_plugins``)."""
    import scfleet.pytest_plugin as plugin

    if not config.pluginmanager.is_registered(plugin) and not config.pluginmanager.is_blocked(
        "scfleet"
    ):
        config.pluginmanager.register(plugin, "scfleet")


@pytest.fixture
def scfleet() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real CLI in a subprocess from the repository root: ``scfleet("run", ...)``;
    ``preexec_fn``: set the child's limits (a small file size: a full disk)."""

    def run(
        *args: str, timeout: float = 150, preexec_fn: Callable[[], None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scfleet", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec_fn,
        )

    return run


@pytest.fixture
def reference_server() -> Iterator[Callable[[Path], EmbeddedServer]]:
    """Start ``python -m reference_server`` on 127.0.0.1 (the same launcher ``scfleet run``
    uses); ``server.url``, ``server.proc``; every one started is stopped at teardown."""
    started: list[EmbeddedServer] = []

    def start(data_dir: Path, **options: Any) -> EmbeddedServer:
        server = EmbeddedServer(data_dir, EmbeddedServerConfig(**options))
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def http_sink() -> Iterator[Callable[..., str]]:
    """A loopback HTTP/1.1 sink that reads each POST's body and answers 200 ``{}`` (after
    ``delay`` seconds, to hold connections open): ``url = http_sink(delay=1.0)``. Every one
    started is shut down at teardown."""
    with contextlib.ExitStack() as servers:

        def start(delay: float = 0.0) -> str:
            class Sink(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def do_POST(self) -> None:  # noqa: N802 - http.server's name
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    if delay:
                        time.sleep(delay)
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

                def log_message(self, *args: Any) -> None:
                    pass

            return servers.enter_context(serving(Sink))

        yield start


@pytest.fixture
def hits_server() -> Iterator[tuple[str, type[Counting]]]:
    """A loopback server that answers 200 to any GET or POST and counts them: ``url, handler``
    (``handler.hits``), for runs that must refuse before their first request."""
    with counting() as got:
        yield got
