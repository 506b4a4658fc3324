"""Fixtures for the reference server: an in-process app (fast) and a real subprocess (for the
process contract: READY line, signals, exit codes)."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp.test_utils import TestClient, TestServer

from reference_server.app import create_app
from reference_server.config import ServerConfig
from reference_server.server import launch_command

ROOT = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"^READY http://127\.0\.0\.1:(\d+)$")


def sine_wav(freq: float, seconds: float = 1.0, rate: int = 16000, amp: float = 0.5) -> bytes:
    """A 16-bit WAV of a pure tone, written by soundfile."""
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, amp * np.sin(2 * np.pi * freq * t), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def thread_pool(config: ServerConfig) -> ThreadPoolExecutor:
    """Analysis in threads: same function, no process spawn, for tests not about the pool."""
    return ThreadPoolExecutor(config.analysis_workers)


AppFactory = Callable[..., Any]


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """Start an in-process server with config overrides; returns an aiohttp TestClient."""
    clients: list[TestClient] = []

    async def start(**overrides: Any) -> TestClient:
        config = replace(
            ServerConfig(data_dir=tmp_path, max_upload_bytes=64 * 1024, session_ttl_s=60.0),
            **overrides,
        )
        client = TestClient(TestServer(create_app(config, analysis_executor=thread_pool)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient:
    return await make_client()


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    url: str
    data_dir: Path

    def stop(self, sig: int, timeout: float = 20.0) -> tuple[int, str, str]:
        """Send ``sig``, wait, return exit code and the rest of stdout/stderr."""
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextmanager
def start_server(cmd: list[str], data_dir: Path, timeout: float = 40.0) -> Iterator[ServerProcess]:
    """Run the server as a child, wait for its READY line, kill it if the test leaves it."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env()
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().rstrip("\n") if ready else ""
        match = READY_RE.match(line)
        if not match:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"no READY line within {timeout}s: {line!r}; stderr: {err}")
        assert time.monotonic() < deadline
        yield ServerProcess(proc, f"http://127.0.0.1:{match.group(1)}", data_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def server_cmd(data_dir: Path, *extra: str) -> list[str]:
    return launch_command(data_dir, *extra)


@pytest.fixture
def wav() -> Callable[..., bytes]:
    """``wav(freq, seconds=1.0, rate=16000, amp=0.5)`` -> WAV bytes of a sine."""
    return sine_wav


@pytest.fixture
def spawn_server() -> Callable[..., Any]:
    """``with spawn_server(data_dir, *extra_args) as srv:`` runs ``python -m reference_server``."""

    def spawn(data_dir: Path, *extra: str, cmd: list[str] | None = None) -> Any:
        return start_server(cmd or server_cmd(data_dir, *extra), data_dir)

    return spawn


@pytest.fixture(scope="module")
def spawn_server_module() -> Callable[..., Any]:
    """``spawn_server`` for module-scoped fixtures (one server shared by a module's tests)."""

    def spawn(data_dir: Path, *extra: str) -> Any:
        return start_server(server_cmd(data_dir, *extra), data_dir)

    return spawn
