"""The embedded target: the reference server in its own process, for ``scfleet run``
without ``--target``.

It runs as a separate process (like the real Flask server would) so the generator and the
server do not share an interpreter or an event loop, and its CPU and memory can be measured.
It must never outlive the run, even when ``scfleet run`` is killed with SIGKILL: it holds the
read end of a pipe whose write end only this process has (EOF: stop) and it is told our pid
(``PR_SET_PDEATHSIG`` and a ``getppid()`` watch); its analysis workers die with it in turn.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from scfleet_core.errors import TargetError
from simulator.config import EmbeddedServerConfig


class EmbeddedServer:
    """``python -m reference_server`` on 127.0.0.1 with a free port, until :meth:`stop`."""

    def __init__(self, data_dir: Path, cfg: EmbeddedServerConfig, *, startup_timeout: float = 60.0):
        self.data_dir = data_dir
        self.cfg = cfg
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "reference_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(self.data_dir),
            "--analysis-workers",
            str(self.cfg.analysis_workers),
            "--extra-cost-ms",
            str(self.cfg.extra_cost_ms),
            "--max-upload-bytes",
            str(self.cfg.max_upload_bytes),
            "--header-timeout",
            str(self.cfg.header_timeout),
            "--body-timeout",
            str(self.cfg.body_timeout),
            "--max-connections",
            str(self.cfg.max_connections),
            "--parent-pid",
            str(os.getpid()),
            "--watch-stdin",
        ]
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.PIPE,  # the lifeline: never written, closed by stop() or our death
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.data_dir / "server.log").read_text(errors="replace").strip()
                last = tail.splitlines()[-1] if tail else "no output"
                raise TargetError(
                    f"embedded reference server exited with code {self.proc.returncode}: {last}"
                )
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            buf += chunk
            for line in buf.splitlines():
                if line.startswith(b"READY "):
                    self.url = line.split(b" ", 1)[1].decode().strip()
                    return self.url
        self.stop()
        raise TargetError(
            f"embedded reference server did not start within "
            f"{self.startup_timeout:g}s (log: {self.data_dir / 'server.log'})"
        )

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
