"""The embedded target: the reference server in its own process, for ``scfleet run``
without ``--target`` (:class:`EmbeddedTarget`, the engine's ``TargetProvider`` for it).

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

from reference_server.server import launch_command
from scfleet_core.errors import TargetError
from simulator.config import EmbeddedServerConfig, RunConfig
from simulator.run.devices import Account
from simulator.session import Target


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
        cmd = launch_command(
            self.data_dir,
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
        )
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.PIPE,  # the lifeline: never written, closed by stop() or our death
            start_new_session=True,
        )
        log.close()
        try:
            return self._wait_ready(self.proc)
        except BaseException:
            # Ctrl-C (or anything) while it boots: a caller whose start() raised never calls
            # stop() (``with`` skips __exit__), and self.proc holds the lifeline open
            self.stop()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> str:
        deadline = time.monotonic() + self.startup_timeout
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        buf = b""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.data_dir / "server.log").read_text(errors="replace").strip()
                last = tail.splitlines()[-1] if tail else "no output"
                raise TargetError(
                    f"embedded reference server exited with code {proc.returncode}: {last}"
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


class EmbeddedTarget:
    """The engine's :class:`~simulator.session.TargetProvider` for the embedded server, its
    data (ledger, log) in ``data_dir`` (the run folder's ``server/``)."""

    def __init__(self, data_dir: Path, *, announce: bool = False) -> None:
        self.data_dir = data_dir
        self.announce = announce
        self.server: EmbeddedServer | None = None
        self._server_cfg: EmbeddedServerConfig | None = None

    def prepare(self, cfg: RunConfig) -> dict[str, list[Account]]:
        """Auth scenarios without an accounts file get accounts seeded into the server.

        The passwords never touch the disk: the server's store gets only their hashes and the
        devices get them from memory (as Secret), so a killed run leaves no password anywhere.
        """
        from reference_server.accounts import create_accounts
        from simulator.run.devices import device_count_bound

        self._server_cfg = cfg.server
        self.data_dir.mkdir(parents=True, exist_ok=True)
        seeded = {}
        for sc in cfg.scenarios:
            if sc.device.needs_accounts and sc.device.accounts_csv is None:
                n = max(device_count_bound(sc), cfg.server.accounts)
                creds = create_accounts(self.data_dir, n, prefix=f"{sc.name}-")
                seeded[sc.name] = [Account(user, password) for user, password in creds]
        if cfg.server.accounts and not any(s.device.needs_accounts for s in cfg.scenarios):
            create_accounts(self.data_dir, cfg.server.accounts)
        return seeded

    def start(self) -> Target:
        assert self._server_cfg is not None, "prepare() first"
        self.server = EmbeddedServer(self.data_dir, self._server_cfg)
        url = self.server.start()
        if self.announce:
            sys.stderr.write(
                f"scfleet: embedded reference server at {url} (pid {self.server.pid})\n"
            )
        return Target(url, self.server.pid)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
