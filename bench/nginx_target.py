"""nginx on loopback as the benchmarks' target: a config in a temp dir, started and stopped by PID.

nginx reads every request body (``client_body_buffer_size`` holds a 32 KB upload in memory, the
body is then discarded) and answers ``200 {"status":"ok"}`` — what the bench sink answers — with
keep-alive, two worker processes (one per core). Its CPU is sampled per step (:meth:`Nginx.cpu`)
so a report can show that nginx was not the bottleneck. The only access log is the start-lag
probe's: a request carrying ``X-Lag-Probe`` (bench_ceiling.py's k6 probe) has that header's
value logged, buffered; other requests are not logged (:meth:`Nginx.take_probe_log`).

``priority`` (bench_ceiling.py ``--target-priority N``) starts nginx under ``SCHED_FIFO`` N; its
workers are forked by the master and inherit it. The bench runs under ``chrt -f 20`` and every
child inherits that: at equal FIFO priority there is no time slice, so a generator worker past
its ceiling (an arrival always due, it hardly ever blocks) can starve the nginx worker on its
core and the bench then measures the target's starvation, not the generator. On a real
deployment target and generator are separate machines; a higher priority for nginx keeps the
target from being starved by the load generator. Default (None): inherited, unchanged.

Needs the ``nginx`` binary (Debian: ``apt-get install nginx``; for the bench only, never CI).
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

CONF = """
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 200000;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log error;
events {{ worker_connections 65536; multi_accept on; }}
http {{
  log_format probe '$http_x_lag_probe';
  access_log {tmp}/probe.log probe buffer=256k flush=200ms if=$http_x_lag_probe;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
  client_max_body_size 1m;
  server {{
    listen 127.0.0.1:{port} backlog=8192;
    location = /bench-nginx-status {{ stub_status; }}
    location / {{
      default_type application/json;
      return 200 '{{"status":"ok"}}';
    }}
  }}
}}
"""


@dataclass(frozen=True)
class CpuReading:
    """nginx's CPU seconds (user+sys): all workers together, and the busiest worker."""

    total: float
    per_worker: tuple[float, ...]


class Nginx:
    """One nginx master + workers on 127.0.0.1:PORT, config and logs in a temp dir."""

    def __init__(self, workers: int = 2, priority: int | None = None) -> None:
        self.workers = workers
        self.priority = priority  # SCHED_FIFO priority of master and workers; None: inherited
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._status_reads = 0  # served(): nginx counts its own status reads as requests

    def __enter__(self) -> Nginx:
        binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if binary is None:
            raise SystemExit("nginx not found: apt-get install -y nginx (bench only)")
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-nginx-")
        tmp = Path(self._tmp.name)
        for attempt in range(5):
            with socket.socket() as s:  # a free port; nginx binds it a moment later
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            conf = tmp / "nginx.conf"
            conf.write_text(CONF.format(workers=self.workers, tmp=tmp, port=port))
            self._proc = subprocess.Popen(
                [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=None if self.priority is None else self._set_priority,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        self.url = f"http://127.0.0.1:{port}"
                        return self
                except OSError:
                    time.sleep(0.05)
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.poll() else ""
            self._stop()
            if attempt == 4:
                raise SystemExit(f"nginx did not start on 127.0.0.1:{port}: {err.strip()[-300:]}")
        raise AssertionError("unreachable")

    def _set_priority(self) -> None:
        """preexec_fn: SCHED_FIFO ``priority`` for nginx's master, inherited by its workers."""
        assert self.priority is not None
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))

    def __exit__(self, *exc: object) -> None:
        self._stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait(5)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def sched(self) -> str:
        """Scheduling of the workers as words, e.g. ``SCHED_FIFO 30`` (for the report)."""
        names = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR", os.SCHED_OTHER: "other"}
        seen = set()
        for child in psutil.Process(self.pid).children():
            with contextlib.suppress(OSError, psutil.Error):
                policy = os.sched_getscheduler(child.pid)
                prio = os.sched_getparam(child.pid).sched_priority
                seen.add(f"{names.get(policy, str(policy))} {prio}")
        return ", ".join(sorted(seen)) or "unknown"

    def take_probe_log(self, expect: int = 0, timeout_s: float = 5.0) -> list[str]:
        """The ``X-Lag-Probe`` values logged since the last call; then the log is emptied.

        nginx writes a worker's buffer at most 200 ms after its first line (``flush=200ms``):
        call this after the generator exited, with ``expect`` the lines due (the requests
        nginx answered); it polls until that many are there or ``timeout_s`` passed. nginx
        appends (``O_APPEND``), so truncating the file in place starts the next run at 0.
        """
        assert self._tmp is not None
        path = Path(self._tmp.name) / "probe.log"
        deadline = time.monotonic() + timeout_s
        while expect and time.monotonic() < deadline:
            if path.exists() and path.read_bytes().count(b"\n") >= expect:
                break
            time.sleep(0.05)
        if not path.exists():
            return []
        with path.open("r+", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
            fh.truncate(0)
        return lines

    def served(self) -> int:
        """Requests nginx has taken so far (stub_status's counter, a request counted as its
        head is read), its own status reads left out: subtract two readings for a run's,
        whatever the generator (k6 or scfleet), timed by the bench, not by the generator."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/bench-nginx-status", timeout=2) as resp:
            lines = resp.read().decode("ascii", "replace").splitlines()
        self._status_reads += 1
        return int(lines[2].split()[2]) - self._status_reads  # "accepts handled requests"

    def cpu(self) -> CpuReading:
        """CPU seconds so far of the master and each worker (subtract two readings)."""
        master = psutil.Process(self.pid)
        workers = []
        for child in master.children():
            try:
                t = child.cpu_times()
            except psutil.Error:
                continue
            workers.append(t.user + t.system)
        t = master.cpu_times()
        return CpuReading(t.user + t.system + sum(workers), tuple(workers))


def raise_nofile(limit: int = 1_048_576) -> None:
    """preexec_fn for a generator: a high open-file limit (as root, the hard one too), so the
    bench measures the generator rather than ``ulimit -n``."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":  # manual check: start nginx, print the URL, stop on Enter
    with Nginx() as n:
        print(f"READY {n.url} (pid {n.pid}); Enter stops it", flush=True)
        with contextlib.suppress(EOFError):
            input()
