"""A target that serves few connections at once (its accept loop stops at the limit, as Go's
LimitListener, Apache prefork or ESP-IDF's httpd with max_open_sockets): the default run dials
on demand, as k6 does, so the server sees only what the rate needs and the figures are the
server's. With 20 connections opened before the start, 2 were accepted and held idle and the
rest completed their handshake in the listen backlog, where the requests written on them waited
for an idle one to time out: http_req_duration p90 28 s, 1-5 timeouts of 30, a 3 s run taking
31 s (probe12's /tmp/p12/limsrv.py, 4 connections, backlog 2). Real server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from raw_http import read_request

from scfleet import api

LIMIT = 2  # connections served at once


class _LimitedServer:
    """HTTP/1.1 keep-alive, at most LIMIT connections served at once (accept() waits for a
    free slot), listen backlog 1, idle connections closed after 5 s."""

    def __init__(self) -> None:
        self.lst = socket.socket()
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(1)
        self.lst.settimeout(0.05)
        self.port = int(self.lst.getsockname()[1])
        self.slots = threading.Semaphore(LIMIT)
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            if not self.slots.acquire(timeout=0.05):
                continue
            try:
                conn, _ = self.lst.accept()
            except (TimeoutError, OSError):
                self.slots.release()
                continue
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5.0)
            buf = b""
            while not self.stop.is_set():
                rest = read_request(conn, buf)
                if rest is None:
                    return
                buf = rest
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass
        finally:
            conn.close()
            self.slots.release()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.lst.close()


@pytest.fixture
def limited() -> Iterator[_LimitedServer]:
    srv = _LimitedServer()
    try:
        yield srv
    finally:
        srv.close()


# At most LIMIT requests in flight, whatever the machine's load: a closed model of LIMIT
# devices. An open one (10/s for 1 s, 20 devices) started the arrivals a stalled loop reached
# late together, dialled past the limit and those requests waited in the backlog for an idle
# connection's 5 s: 'assert 1 == 0' (1 timeout of 10) once beside two busy loops, and 3 of 3
# with the run paused 0.6 s after its first request (1-2 timeouts, 5 connections accepted).
# Opening 20 connections before the start still fails it: 2-6 timeouts of 10, 6-12 accepted.
_TOML = """
[target]
timeout = "3s"
[scenarios.up]
executor = "per-vu-iterations"
vus = 2
iterations = 5
max_duration = "30s"
[scenarios.up.device]
chunk_bytes = 200
[audio]
profiles = 1
seconds = 1
"""


@pytest.mark.slow
def test_the_default_run_dials_on_demand_against_a_limited_server(
    tmp_path: Path, limited: _LimitedServer
) -> None:
    cfg_file = tmp_path / "l.toml"
    cfg_file.write_text(_TOML)
    outcome = api.run(
        api.load(cfg_file),
        target=f"http://127.0.0.1:{limited.port}",
        out=tmp_path / "run",
        workers=1,
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    m = summary["metrics"]
    assert m["http_reqs"]["count"] == 10
    assert m["http_req_failed"]["passes"] == 0, m["http_req_failed"]  # no timeouts
    assert m["http_req_duration"]["max"] < 1000, m["http_req_duration"]  # ms: no wait in a backlog
    assert limited.accepted <= LIMIT + 1  # the reachability check's, and what the run needs
    assert summary["scfleet"]["options"]["warmConnections"] == 0  # the default: none ahead
    assert outcome.exit_code == 0
    assert summary["scfleet"]["stages"]["scenarios"]["up"]["verdict"] == "held"
