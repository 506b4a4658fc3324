"""A ``scfleet run`` of two worker processes, with its workers found so a test can stop or kill
one, and every process reaped however the test ends (a stopped worker holds the run's stdout
open, so the workers go first). Shared by the tests of dead, hung and never-ready workers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


class WorkerRun:
    """The run's process and, once found, its worker processes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.kids: list[psutil.Process] = []

    def find_workers(self, want: int, deadline: float, poll: float = 0.1) -> list[psutil.Process]:
        """Waits until ``want`` workers were forked (or ``deadline``); ``poll=0`` to catch one
        before it is ready."""
        while len(self.kids) < want and time.time() < deadline:
            self.kids = [
                c
                for c in psutil.Process(self.proc.pid).children()
                if "--multiprocessing-fork" in c.cmdline()
            ]
            time.sleep(poll)
        return self.kids

    def wait_ticks(self, stream: Path, ticks: int, deadline: float) -> None:
        """Waits until ``stream`` (run.ndjson) holds ``ticks`` ticks, the run ends, or ``deadline``."""
        while time.time() < deadline and self.proc.poll() is None:
            if stream.exists() and stream.read_text().count('"type":"tick"') >= ticks:
                break
            time.sleep(0.1)

    def reap(self) -> None:
        for k in self.kids:
            if k.is_running():
                k.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


#: ``scfleet`` whose coordinator waits ``{}`` s for its workers' Ready (read at the wait)
_READY_IN = """
import sys
from scfleet import cli
from simulator.run import workers

workers.READY_TIMEOUT = {}
sys.exit(cli.main())
"""


@contextlib.contextmanager
def two_workers(args: list[str], ready_timeout: float | None = None) -> Iterator[WorkerRun]:
    """``scfleet run <args> --workers 2 --quiet`` from the repository's root, reaped on exit;
    ``ready_timeout``: the run's wait for its workers' Ready (``READY_TIMEOUT``) set to that."""
    start = ["-m", "scfleet"]
    if ready_timeout is not None:
        start = ["-c", _READY_IN.format(ready_timeout)]
    proc = subprocess.Popen(
        [sys.executable, *start, "run", *args, "--workers", "2", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = WorkerRun(proc)
    try:
        yield run
    finally:
        run.reap()
