"""Shared fixtures for every area's tests."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
    """Run the real CLI in a subprocess from the repository root: ``scfleet("run", ...)``."""

    def run(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scfleet", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
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
