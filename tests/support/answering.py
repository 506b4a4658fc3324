"""A loopback HTTP server answering every request with one status after a delay, and a
Python device whose custom trend and gauge are filled only by answered (200) uploads: against
a server answering 500 they stay empty. Shared by the tests of empty metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from raw_http import serving
from small_run import SMALL_RUN

from scfleet import api
from scfleet.api import RunOutcome

EMPTY_ON_FAILURE_DEVICE = """
from simulator.userdevice import Device, Gauge, Trend


class D(Device):
    size = Trend("my_batch_bytes")
    level = Gauge("my_level")

    async def on_start(self) -> None:
        self.seq = 0

    async def iteration(self) -> None:
        res = await self.client.post(
            "/up", data=b"x" * 100,
            headers={"X-Device-ID": self.device_id, "X-Sequence": str(self.seq)},
        )
        self.seq += 1
        if res.status == 200:
            self.size.add(100)
            self.level.add(5)
"""


class _Answers(BaseHTTPRequestHandler):
    """One instance per connection: ``delays[i]`` is how long its (i+1)th request waits (the
    last one for every later request)."""

    protocol_version = "HTTP/1.1"
    status = 500
    delays: tuple[float, ...] = (0.0,)
    served = 0

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delays[min(self.served, len(self.delays) - 1)])
        self.served += 1
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def answering(status: int, delay: float, *later: float) -> Iterator[str]:
    """The server's URL while it runs. Each connection's first request is answered after
    ``delay``; with ``later``, its next ones after those delays in turn (a VU on its own
    keep-alive connection: its iteration n's answer), the last for every one after."""
    handler = type("H", (_Answers,), {"status": status, "delays": (delay, *later)})
    with serving(handler) as url:
        yield url


def run_empty_on_failure(tmp_path: Path, thresholds: str) -> RunOutcome:
    """1 s at 5/s of ``EMPTY_ON_FAILURE_DEVICE`` against a server answering 500, with the
    ``[thresholds]`` lines given; the run's files in ``tmp_path / "r"``."""
    (tmp_path / "dev.py").write_text(EMPTY_ON_FAILURE_DEVICE)
    (tmp_path / "s.toml").write_text(
        SMALL_RUN
        + """[scenarios.up.device]
kind = "python:dev.py:D"
[thresholds]
"""
        + thresholds
    )
    with answering(500, 0.0) as url:
        return api.run(api.load(tmp_path / "s.toml"), target=url, out=tmp_path / "r", workers=1)
