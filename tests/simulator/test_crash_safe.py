"""Issue 10 items 10 and 11: the run folder's own stream (run.ndjson) survives kill -9 and
``scfleet report`` rebuilds the summary from it; SIGTERM is Ctrl-C at any moment."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from simulator.report.summary import figures

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CONFIG = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 40
duration = "{duration}"
pre_allocated_devices = 4
graceful_stop = "1s"
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 3200
[thresholds]
http_req_failed = ["rate<0.5"]
"""


def _start(tmp: pathlib.Path, duration: str, *extra: str, quiet: bool = True) -> Any:
    cfg = tmp / "crash.toml"
    cfg.write_text(CONFIG.format(duration=duration))
    args = [sys.executable, "-m", "scfleet", "run", str(cfg), "--out", str(tmp / "run")]
    return subprocess.Popen(
        [*args, *(["--quiet"] if quiet else []), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: the embedded server dies with it below
    )


def _streamed(run: pathlib.Path) -> tuple[int, int]:
    """(complete tick lines, http_reqs summed from their deltas) in run.ndjson now."""
    path = run / "run.ndjson"
    if not path.exists():
        return 0, 0
    ticks = reqs = 0
    for line in path.read_text().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("type") != "tick":
            continue
        ticks += 1
        for s in obj["registry"]["series"]:
            if s["metric"] == "http_reqs":
                reqs += int(s["value"])
    return ticks, reqs


def _wait_for_ticks(proc: Any, run: pathlib.Path, ticks: int, deadline: float = 90) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got, reqs = _streamed(run)
        if got >= ticks and reqs > 0:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"the stream did not reach {ticks} ticks in {deadline}s")


def _kill_group(proc: Any) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def _report(run: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scfleet", "report", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_kill_9_mid_run_then_report_rebuilds_the_summary(tmp_path: pathlib.Path) -> None:
    proc = _start(tmp_path, "60s")
    run = tmp_path / "run"
    try:
        _wait_for_ticks(proc, run, 3)
    finally:
        _kill_group(proc)  # kill -9 of scfleet run (and its embedded server)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "summary.json").exists()  # nothing but the stream was written
    ticks, streamed = _streamed(run)
    assert ticks >= 3 and streamed > 0

    res = _report(run)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "Traceback" not in res.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert int(figures(summary, "http_reqs")["count"]) == streamed
    assert figures(summary, "http_req_duration")["p(95)"] > 0
    notes = summary["scfleet"]["notes"]
    assert any("rebuilt by scfleet report" in n for n in notes), notes
    assert summary["scfleet"]["state"]["interrupted"] is True
    for name in ("summary.txt", "report.html", "timeline.json", "metrics.json"):
        assert (run / name).stat().st_size > 0, name
    assert len(json.loads((run / "timeline.json").read_text())) == ticks


def test_the_stream_of_a_finished_run_rebuilds_the_same_summary(tmp_path: pathlib.Path) -> None:
    """Deltas add up exactly: a summary rebuilt from the stream equals the one the run wrote."""
    proc = _start(tmp_path, "3s")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err + out
    run = tmp_path / "run"
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(run / "run.ndjson", copy / "run.ndjson")
    res = _report(copy)
    assert res.returncode == 0, res.stderr
    a = json.loads((run / "summary.json").read_text())
    b = json.loads((copy / "summary.json").read_text())
    for key in ("http_reqs", "iterations", "data_sent", "http_req_failed"):
        assert figures(a, key).get("count") == figures(b, key).get("count"), key
    for stat in ("p(90)", "p(95)", "max", "min", "avg"):
        assert figures(a, "http_req_duration")[stat] == pytest.approx(
            figures(b, "http_req_duration")[stat]
        ), stat


def test_sigterm_mid_run_is_ctrl_c(tmp_path: pathlib.Path) -> None:
    proc = _start(tmp_path, "60s")
    run = tmp_path / "run"
    try:
        _wait_for_ticks(proc, run, 2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    assert proc.returncode == 105, err
    assert "Traceback" not in err
    summary = json.loads((run / "summary.json").read_text())
    assert int(figures(summary, "http_reqs")["count"]) > 0
    assert summary["scfleet"]["state"]["interrupted"] is True


def test_sigterm_during_start_up_leaves_no_folder_and_no_server(tmp_path: pathlib.Path) -> None:
    proc = _start(tmp_path, "60s", quiet=False)
    run = tmp_path / "run"
    line = ""
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and "embedded reference server at" not in line:
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                line = proc.stderr.readline()
                assert line, "scfleet exited during start-up"
        assert "embedded reference server at" in line
        proc.send_signal(signal.SIGTERM)  # the server is up, the run has not started
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    assert proc.returncode == 105, err
    assert "Traceback" not in err
    server_pid = int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the embedded server outlived scfleet")
    if not (run / "summary.json").exists():  # stopped before the first request
        assert not run.exists(), list(run.rglob("*"))
