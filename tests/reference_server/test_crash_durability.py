"""kill -9 of the reference server mid-run loses no acknowledged upload.

``scfleet run`` drives a server started separately; once the server has acknowledged enough
uploads (progress, read from ``/api/stats``) it is killed with SIGKILL and restarted on the same
data dir and port, and the run goes on. Every upload the client counted as 200 must be in the
ledger: per device, ledger rows >= the client's ``ok`` count (a row can exist without an answer —
killed between commit and reply — but never an answer without a row).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

CONFIG = """
[scenarios.iot]
executor = "constant-arrival-rate"
rate = 150
duration = "{duration}s"
pre_allocated_devices = 40
max_devices = 80
graceful_stop = "2s"
[scenarios.iot.device]
kind = "iot_upload"
chunk_bytes = 3200
keep_alive = true
[target]
timeout = "1s"
"""


def _accepted(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/api/stats", timeout=2) as resp:
            return int(json.loads(resp.read())["uploads_accepted"])
    except OSError:
        return 0


def acknowledged_but_missing(run_dir: Path, ledger: Path) -> tuple[int, int, int]:
    """(acknowledged, ledger rows, acknowledged-but-missing) from devices.csv and the ledger."""
    with open(run_dir / "devices.csv") as fh:
        ok = {d["device_id"]: int(d["ok"]) for d in csv.DictReader(fh)}
    conn = sqlite3.connect(ledger)
    rows = dict(conn.execute("SELECT device_id, count(*) FROM uploads GROUP BY device_id"))
    conn.close()
    missing = sum(max(0, n - rows.get(dev, 0)) for dev, n in ok.items())
    return sum(ok.values()), sum(rows.values()), missing


def test_kill_9_and_restart_mid_run_loses_no_acknowledged_upload(
    tmp_path: Path, spawn_server: Any
) -> None:
    data = tmp_path / "srv"
    cfg = tmp_path / "crash.toml"
    cfg.write_text(CONFIG.format(duration=8))
    run_dir = tmp_path / "run"
    with spawn_server(data, "--analysis-workers", "1") as first:
        port = first.url.rsplit(":", 1)[1]
        runner = subprocess.Popen(
            [sys.executable, "-m", "scfleet", "run", str(cfg), "--target", first.url]
            + ["--out", str(run_dir), "--quiet"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while _accepted(first.url) < 200 and time.monotonic() < deadline:
                assert runner.poll() is None, runner.communicate()
                time.sleep(0.02)
            assert _accepted(first.url) >= 200, "the run made no progress"
            first.proc.kill()  # SIGKILL: no shutdown, no flush
            first.proc.wait(10)
            with spawn_server(data, "--analysis-workers", "1", "--port", port) as second:
                runner.communicate(timeout=120)
                second.stop(15)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.communicate()
    acked, rows, missing = acknowledged_but_missing(run_dir, data / "ledger.sqlite")
    print(f"acknowledged {acked}, ledger rows {rows}, acknowledged-but-missing {missing}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["http_req_failed"]["passes"] > 0  # the kill was felt
    assert acked > 200 and rows >= acked - missing
    assert missing == 0, f"{missing} of {acked} acknowledged uploads are not in the ledger"
