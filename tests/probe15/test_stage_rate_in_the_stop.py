"""A stage's req/s is what completed within its own seconds; the requests that finish in the
graceful stop count in the last stage's latencies, errors and counts, not in its rate.

Found with a ramp 20 → 40 → 80 → 80/s (3 s stages, graceful_stop 3s) against a loopback
server that answers one request at a time in 20 ms (at most 50/s): the last stage read
79.7 req/s at 80 offered — the stop's 2 s of answers divided by the stage's 3 s — on a server
that cannot serve more than 50/s. A server that answered nothing during its last stage and
everything in the stop read its full rate and "throughput held", never a cliff.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from raw_http import loopback, read_request
from stage_ticks import tick

from scfleet import api
from simulator.executors import StageWindow
from simulator.report.stages import StageRecorder, assess, build_rows

WINDOWS = {
    "s": [
        StageWindow("s", 0, 0.0, 3.0, 20, 20, "iters/s"),
        StageWindow("s", 1, 3.0, 6.0, 20, 20, "iters/s"),
    ]
}


def _tick(t: float, requests: int, p95: float = 10.0) -> dict[str, Any]:
    return tick(t, requests, ms=(p95, p95, p95, p95, p95))


def test_a_stage_answered_only_in_the_stop_is_a_cliff_not_its_full_rate() -> None:
    # 20/s answered in stage 1; nothing during stage 2; its 60 answered in the 3 s stop
    timeline = [_tick(t, 20) for t in (1, 2, 3)] + [_tick(t, 0) for t in (4, 5, 6)]
    timeline += [_tick(t, 20, 4000.0) for t in (7, 8, 9)]
    rows = build_rows(StageRecorder(WINDOWS), timeline, [("http_req_duration", "p(95)<2000")])
    assert rows[1].requests == 60  # the stop's answers are the stage's
    assert rows[1].achieved_rps == 0.0, rows[1]
    a = assess(rows)
    assert a.verdict == "cliff", a


def test_a_single_stage_answered_only_in_the_stop_does_not_claim_throughput_held() -> None:
    windows = {"s": [StageWindow("s", 0, 0.0, 1.0, 5, 5, "iters/s")]}
    timeline = [_tick(1, 0)] + [_tick(t, 0) for t in (2, 3, 4)] + [_tick(5, 5, 4000.0)]
    rows = build_rows(StageRecorder(windows), timeline, [("http_req_duration", "p(95)<100")])
    a = assess(rows)
    assert a.verdict == "graceful" and "throughput held" not in a.reason, a.reason
    assert "its 5 requests were answered only in the graceful stop" in a.reason, a.reason


def _one_at_a_time(service: float) -> contextlib.AbstractContextManager[str]:
    """Answers one request at a time, ``service`` s each, closing each connection."""

    def serve(conn: socket.socket, _stop: threading.Event) -> None:
        with conn:
            read_request(conn, b"")  # answered even when the peer closed early, as before
            time.sleep(service)
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    return loopback(serve, threaded=False, backlog=256)


@pytest.mark.slow
def test_the_last_stage_reads_no_more_than_the_server_can_serve(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        """
[scenarios.up]
executor = "ramping-arrival-rate"
start_rate = 20
pre_allocated_devices = 20
max_devices = 100
stages = [{ duration = "2s", target = 20 }, { duration = "1s", target = 80 }, { duration = "3s", target = 80 }]
graceful_stop = "3s"
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 1000
"""
    )
    with _one_at_a_time(0.02) as url:  # at most 50 answers a second
        out = api.run(api.load(tmp_path / "s.toml"), target=url, out=tmp_path / "r", workers=1)
    assert out.folder is not None
    last = out.folder.rows[-1]
    assert last.achieved_rps <= 52, (last.achieved_rps, last.requests, last.seconds)
