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
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@contextlib.contextmanager
def _last_of_20_slow(hold: float) -> Iterator[str]:
    """A keep-alive server answering every 20th upload after ``hold`` seconds."""
    lsock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        n = 0
        buf = b""
        with conn:
            while not stop.is_set():
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                n += 1
                if n % 20 == 0:
                    time.sleep(hold)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{lsock.getsockname()[1]}"
    finally:
        stop.set()
        lsock.close()


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
