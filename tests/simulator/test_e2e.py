"""Whole runs through the real CLI against real servers on loopback."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_smoke_run_matches_server_ledger(tmp_path: pathlib.Path, scfleet: Any) -> None:
    out = tmp_path / "run"
    res = scfleet("run", "configs/smoke.toml", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr + res.stdout
    summary = json.loads((out / "summary.json").read_text())
    sent = int(summary["metrics"]["http_reqs"]["count"])
    assert sent > 100
    assert summary["metrics"]["http_req_failed"]["value"] == 0
    assert summary["metrics"]["http_req_duration"]["p(95)"] > 0
    assert all(t["ok"] for t in summary["scfleet"]["thresholds"])
    assert not any(summary["metrics"]["http_req_failed"]["thresholds"].values())  # k6: true=failed
    with open(out / "devices.csv") as fh:
        devices = list(csv.DictReader(fh))
    db = sqlite3.connect(out / "server" / "ledger.sqlite")
    rows = db.execute("SELECT device_id, sequence, bytes FROM uploads").fetchall()
    assert len(rows) == sent
    by_dev: dict[str, list[tuple[int, int]]] = {}
    for dev, seq, nbytes in rows:
        by_dev.setdefault(dev, []).append((seq, nbytes))
    assert {d["device_id"] for d in devices if int(d["requests"])} == set(by_dev)
    for d in devices:
        got = sorted(by_dev.get(d["device_id"], []))
        n = int(d["next_sequence"])
        assert [s for s, _ in got] == list(range(n)), d["device_id"]
        assert sum(b for _, b in got) == int(d["bytes_ok"])
        assert all(b == 32000 for _, b in got)
    assert (out / "config.json").exists() and (out / "metrics.json").exists()
    assert "http_req_duration" in res.stdout and "THRESHOLDS" in res.stdout


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_flask_server_receives_body_in_request_data(
    tmp_path: pathlib.Path, fleet: Any, transport: str
) -> None:
    """An independent WSGI server (Flask/Werkzeug), as the real SignalCraft server is,
    through both transports; run through the pytest plugin's ``fleet``."""
    from flask import Flask, request
    from werkzeug.serving import make_server

    seen: list[dict[str, object]] = []
    app = Flask("signalcraft_like")

    @app.post("/api/esp32/audio/upload")
    def upload() -> tuple[dict[str, object], int]:
        data = request.data  # empty unless Content-Type is application/octet-stream
        seen.append(
            {
                "device": request.headers.get("X-Device-ID"),
                "rate": request.headers.get("X-Sample-Rate"),
                "seq": request.headers.get("X-Sequence"),
                "ctype": request.headers.get("Content-Type"),
                "len": len(data),
                "sha": hashlib.sha256(data).hexdigest(),
            }
        )
        return {"status": "ok"}, 200

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        cfg = tmp_path / "flask.toml"
        cfg.write_text("""
[scenarios.iot]
executor = "constant-arrival-rate"
rate = 20
duration = "2s"
pre_allocated_devices = 4
max_devices = 20
[scenarios.iot.device]
chunk_bytes = 8000
keep_alive = false
[audio]
seed = 42
[thresholds]
http_req_failed = ["rate<0.01"]
""")
        run = fleet.run(
            cfg,
            target=f"http://127.0.0.1:{server.server_port}",
            overrides=[f"target.transport='{transport}'"],
        )
        run.assert_ok()
    finally:
        server.shutdown()
    # Every scheduled upload reached the server, or (a starved machine, every device busy)
    # was counted as dropped, as k6 does; none lost, none sent twice, none failed (the
    # threshold), every body below byte-exact. How many got through is the machine's: the
    # Werkzeug server shares this process's GIL and cores, and a floor of 20 failed on a
    # 2-core machine at load ~6 (10 and 2 of 40 arrived) while main and 4416f19 (before
    # the aiohttp hooks and warm pools) both got 40/40 under 4 busy loops, interleaved.
    # One upload is what the body checks need.
    dropped = run.summary["metrics"].get("dropped_iterations", {}).get("count", 0)
    assert len(seen) == run.metric("http_reqs")["count"] and len(seen) + dropped == 40
    assert len({(s["device"], s["seq"]) for s in seen}) == len(seen) >= 1
    from audio_synth import PcmBank

    bank = PcmBank.build(42, max_chunk_bytes=8000)
    devices = sorted({str(s["device"]) for s in seen})
    for s in seen:
        assert s["len"] == 8000
        assert s["rate"] == "16000"
        assert s["ctype"] == "application/octet-stream"
        assert str(s["device"]).startswith("esp32-")
        idx = int(str(s["device"]).split("-")[1]) - 1
        expected = hashlib.sha256(bank.chunk(idx, int(str(s["seq"])), 8000)).hexdigest()
        assert s["sha"] == expected
    assert len(devices) >= 1


def test_server_killed_mid_run_is_counted_and_run_goes_on(
    tmp_path: pathlib.Path, reference_server: Any
) -> None:
    """Failures are counted, every scheduled iteration still runs, and the stage table calls
    it a crash (the server's process is sampled with --server-pid)."""
    server = reference_server(tmp_path / "srv")
    proc, url = server.proc, server.url
    cfg = tmp_path / "kill.toml"
    cfg.write_text("""
[scenarios.iot]
executor = "ramping-arrival-rate"
start_rate = 40
pre_allocated_devices = 5
max_devices = 50
graceful_stop = "1s"
stages = [{ duration = "3s", target = 40 }, { duration = "3s", target = 40 }]
[target]
timeout = "2s"
[thresholds]
http_req_failed = ["rate<0.01"]
""")
    out = tmp_path / "run"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scfleet",
            "run",
            str(cfg),
            "--target",
            url,
            "--server-pid",
            str(proc.pid),
            "--out",
            str(out),
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Kill it once the run's third point (the first stage's last) is in its stream: every point
    # of the first stage sampled the server alive. Before, the kill came at the 130th upload
    # (~3.25 s), and a loaded machine's late third tick sampled the server already dead: stage
    # 1's server_alive read 0.0 (1 run in 6 under SCHED_FIFO bursts on both cores).
    try:
        stream = out / "run.ndjson"  # one line per second of run time
        deadline = time.time() + 60
        while time.time() < deadline and runner.poll() is None:
            with contextlib.suppress(OSError):
                if stream.read_text().count('"type":"tick"') >= 3:
                    break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    stdout, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 99, stderr
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    reqs = summary["metrics"]["http_reqs"]["count"]
    failed = summary["metrics"]["http_req_failed"]
    # every scheduled iteration ran, before and after the kill, or (a loaded machine's loop
    # reaching it late) was counted as dropped, as k6 does: none lost ('assert 237 == 240'
    # once under load when this read reqs == 240)
    dropped = summary["metrics"].get("dropped_iterations", {}).get("count", 0)
    assert reqs + dropped == 240, (reqs, dropped)
    assert 0 < failed["passes"] < reqs
    assert not summary["scfleet"]["state"]["interrupted"]
    metrics = json.loads((out / "metrics.json").read_text())
    statuses = {s["tags"].get("status") for s in metrics["series"] if s["metric"] == "http_reqs"}
    assert {"200", "0"} <= statuses
    rows = summary["scfleet"]["stages"]["rows"]
    assert rows[0]["thresholds_ok"] is True and rows[0]["server_alive"] == 1
    assert rows[1]["server_alive"] == 0 and rows[1]["error_rate"] > 0.5
    a = summary["scfleet"]["stages"]["scenarios"]["iot"]
    assert (a["knee"], a["verdict"], a["bottleneck"]) == (0, "cliff", "crash"), a


def test_ctrl_c_writes_what_ran(tmp_path: pathlib.Path) -> None:
    """Ctrl-C mid-run: exit 105, and the summary, ledger, stage table and reports are written."""
    from simulator.report.cli import REPORT_FILES

    out = tmp_path / "run"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scfleet",
            "run",
            "configs/smoke.toml",
            "--set",
            "scenarios.iot_upload.stages=[{duration='2s',target=20},{duration='60s',target=20}]",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 90
    stream = out / "run.ndjson"  # one line per second of run time: wait on progress
    while time.time() < deadline and runner.poll() is None:
        if stream.exists() and stream.read_text().count('"type":"tick"') >= 4:
            break
        time.sleep(0.1)
    runner.send_signal(signal.SIGINT)
    stdout, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 105, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scfleet"]["state"]["interrupted"] is True
    assert summary["metrics"]["http_reqs"]["count"] > 10
    assert "run interrupted" in stdout
    assert "Traceback" not in stderr
    # the embedded server was stopped and its ledger flushed
    db = sqlite3.connect(out / "server" / "ledger.sqlite")
    (n,) = db.execute("SELECT count(*) FROM uploads").fetchone()
    # an upload in flight at Ctrl-C is cancelled (an interrupted iteration, not a request) but
    # the server may have stored it already
    reqs = summary["metrics"]["http_reqs"]["count"]
    cut = summary["scfleet"]["metrics"].get("interrupted_iterations", {}).get("count", 0)
    assert reqs <= n <= reqs + cut
    assert os.path.exists(out / "timeline.json")
    for name in (*REPORT_FILES, "stages.json"):
        assert (out / name).stat().st_size > 0, name
    rows = summary["scfleet"]["stages"]["rows"]
    assert rows[0]["reached"] and rows[1]["reached"] and rows[1]["seconds"] < 10
    assert "STAGES" in stdout
    # not a terminal: plain progress lines, no cursor control codes in the log
    assert "\x1b[" not in stderr and "running " in stderr
