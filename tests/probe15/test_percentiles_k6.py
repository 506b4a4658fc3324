"""Percentiles are k6's: linear interpolation between the two nearest ranks
(``TrendSink.P``: i = p · (n − 1)), not HDR's nearest rank.

Found with 20 uploads (one VU, 20 iterations) to a loopback server answering the 20th after
1 s and the rest in ~45 ms: k6 1.1 printed p(95)=134.99ms, ✗ ``p(95)<50``, exit 99; scfleet
printed p(95)=47.97ms, ✓, exit 0 — the same latencies, the opposite verdict. With few samples
and one slow request the nearest rank ignores the tail k6 counts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
from raw_http import loopback, read_request

from scfleet import api
from simulator.metrics.histogram import Histogram


def _k6_p(values: list[float], pct: float) -> float:
    """k6's TrendSink.P on the sorted values."""
    v = sorted(values)
    i = pct / 100 * (len(v) - 1)
    lo, hi = v[int(i)], v[min(int(i) + 1, len(v) - 1)]
    return lo + (hi - lo) * (i - int(i))


@pytest.mark.parametrize(
    ("values", "pct"),
    [
        ([45_000] * 19 + [1_000_000], 95),  # 20 uploads, one slow
        ([10_000, 3_000_000], 50),  # the median of two
        ([10_000, 3_000_000], 95),
        ([10_000, 10_000, 3_000_000], 99),
        ([7_000], 95),  # one sample: itself
        (list(range(1_000, 101_000, 1_000)), 90),
        (list(range(1_000, 101_000, 1_000)), 99.9),
    ],
)
def test_a_percentile_is_k6s_interpolation(values: list[int], pct: float) -> None:
    h = Histogram()
    for v in values:
        h.record(v)
    want = _k6_p([float(v) for v in values], pct)
    assert h.percentile(pct) == pytest.approx(want, rel=2e-3), (h.percentile(pct), want)


def test_merged_and_flushed_histograms_agree() -> None:
    a, b = Histogram(), Histogram()
    for v in [45_000] * 10:
        a.record(v)
    for v in [45_000] * 9 + [1_000_000]:
        b.record(v)
    a.merge(b)
    assert a.percentile(95) == pytest.approx(_k6_p([45_000.0] * 19 + [1e6], 95), rel=2e-3)


def _last_of_20_slow(hold: float) -> contextlib.AbstractContextManager[str]:
    """A keep-alive server answering every 20th upload after ``hold`` seconds."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        n = 0
        buf: bytes | None = b""
        with conn:
            while not stop.is_set():
                buf = read_request(conn, buf)
                if buf is None:
                    return
                n += 1
                if n % 20 == 0:
                    time.sleep(hold)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    return loopback(serve, threaded=True)


@pytest.mark.slow
def test_one_slow_upload_in_20_breaks_p95_as_in_k6(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        """
[scenarios.up]
executor = "per-vu-iterations"
vus = 1
iterations = 20
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 100
[thresholds]
http_req_duration = ["p(95)<150"]
"""
    )
    with _last_of_20_slow(4.0) as url:
        out = api.run(api.load(tmp_path / "s.toml"), target=url, out=tmp_path / "r", workers=1)
    (res,) = out.result.thresholds
    # k6: values[18] + 0.05 · (4000 ms − values[18]) ≥ 200 ms
    assert res.observed is not None and res.observed >= 200, res
    assert not res.ok and out.exit_code == 99
