"""The process contract the load engine relies on: ``python -m reference_server`` prints one
READY line, serves with a real analysis pool, and on SIGTERM/SIGINT flushes the ledger and
exits 0; bad options fail in one line."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from reference_server import ANALYZE_PATH, UPLOAD_PATH
from reference_server.ledger import read_uploads

pytestmark = pytest.mark.slow

HEADERS = {"Content-Type": "application/octet-stream", "X-Sample-Rate": "16000"}


def _analysis_form(payload: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("audio", payload, filename="test.wav", content_type="audio/wav")
    return form


async def test_serve_upload_analyse_then_sigterm_flushes_ledger(
    tmp_path: Path, spawn_server: Any, wav: Callable[..., bytes]
) -> None:
    n = 60
    bodies = [hashlib.sha256(str(i).encode()).digest() * (i + 1) for i in range(n)]
    with spawn_server(tmp_path / "data") as srv:
        async with aiohttp.ClientSession(srv.url) as http:
            health = await (await http.get("/health")).json()
            assert health["status"] == "ok" and health["analysis_workers"] == 2

            # The real process pool: decode a WAV in a worker process.
            async with http.post(ANALYZE_PATH, data=_analysis_form(wav(2500.0, 2.0))) as resp:
                assert resp.status == 200, await resp.text()
                result = await resp.json()
            assert result["spectral_centroid_hz"] == pytest.approx(2500.0, rel=0.03)
            async with http.post(ANALYZE_PATH, data=_analysis_form(b"garbage" * 50)) as resp:
                assert resp.status == 400

            # Uploads last, then SIGTERM at once, so rows may still be queued in the writer.
            async def upload(i: int) -> int:
                headers = {**HEADERS, "X-Device-ID": f"esp32-{i % 7:06d}", "X-Sequence": str(i)}
                async with http.post(UPLOAD_PATH, data=bodies[i], headers=headers) as resp:
                    return resp.status

            statuses = await asyncio.gather(*(upload(i) for i in range(n)))
            assert statuses == [200] * n
        code, out, err = srv.stop(signal.SIGTERM)  # at once: rows may still be queued
    assert code == 0, err
    assert out == "" and "Traceback" not in err
    rows = read_uploads(tmp_path / "data" / "ledger.sqlite")
    assert len(rows) == n
    assert sorted((r.sequence, r.bytes, r.sha256) for r in rows) == [
        (i, len(b), hashlib.sha256(b).hexdigest()) for i, b in enumerate(bodies)
    ]


async def test_one_worker_saturates_and_requests_queue(
    tmp_path: Path, spawn_server: Any, wav: Callable[..., bytes]
) -> None:
    """With one worker and 200 ms of CPU per request, concurrent requests wait for each other:
    the k-th of N waits for k-1 burns, so latency grows with concurrency (seed scenario 1's
    saturation, which the report's stage table must show)."""
    clip = wav(1000.0, 1.0)
    with spawn_server(tmp_path, "--analysis-workers", "1", "--extra-cost-ms", "200") as srv:
        async with aiohttp.ClientSession(srv.url) as http:

            async def analyse() -> tuple[float, dict[str, Any]]:
                started = time.perf_counter()
                async with http.post(ANALYZE_PATH, data=_analysis_form(clip)) as resp:
                    assert resp.status == 200
                    return time.perf_counter() - started, await resp.json()

            alone, _ = await analyse()
            results = await asyncio.gather(*(analyse() for _ in range(4)))
            stats = await (await http.get("/api/stats")).json()
        srv.stop(signal.SIGTERM)
    latencies = sorted(t for t, _ in results)
    # CPU time >= 200 ms per request on one worker: the last waits for three others' burns.
    assert latencies[-1] >= 0.8
    assert latencies[-1] > 2.0 * alone
    assert max(r["queue_ms"] for _, r in results) >= 500
    assert stats["analyses_in_flight_max"] == 4 and stats["analyses_ok"] == 5


def test_scfleet_serve_stops_on_ctrl_c(tmp_path: Path, spawn_server: Any) -> None:
    cmd = [sys.executable, "-m", "scfleet", "serve", "--port", "0"]
    cmd += ["--data-dir", str(tmp_path), "--analysis-workers", "1"]
    with spawn_server(tmp_path, cmd=cmd) as srv:
        code, out, err = srv.stop(signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port"),
        (["--analysis-workers", "0"], "--analysis-workers"),
        (["--extra-cost-ms", "-1"], "--extra-cost-ms"),
        (["--sample-rates", "fast"], "--sample-rates"),
        (["--bogus"], "unrecognized arguments"),
        ([], "--data-dir"),
    ],
)
def test_bad_arguments_fail_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    if args != []:
        args = [*args, "--data-dir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "reference_server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert proc.stdout == ""


def test_unusable_data_dir_fails_in_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    for data_dir in (not_a_dir, not_a_dir / "sub"):
        proc = subprocess.run(
            [sys.executable, "-m", "reference_server", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert proc.returncode != 0
        assert proc.stderr.count("\n") == 1 and str(data_dir) in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_port_in_use_fails_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "reference_server", "--port", str(port)]
            + ["--data-dir", str(tmp_path), "--analysis-workers", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and f":{port}" in proc.stderr, proc.stderr
