"""Nothing outlives what started it: a killed reference server leaves no analysis worker and no
multiprocessing resource tracker; a killed ``scfleet run`` leaves no embedded server serving and
no file with the seeded accounts' passwords. Real processes, real signals, checked with psutil."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie waiting for a non-reaping init counts as dead)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid}: {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            out.append(str(p.pid))
    return out


def _descendants(pid: int, at_least: int, timeout: float = 30.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        kids = psutil.Process(pid).children(recursive=True)
        if len(kids) >= at_least or time.monotonic() > deadline:
            return kids
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_server_leaves_no_worker_or_tracker(
    tmp_path: Path, spawn_server: Any, sig: signal.Signals
) -> None:
    with spawn_server(tmp_path / "data", "--analysis-workers", "2") as srv:
        kids = _descendants(srv.proc.pid, at_least=3)  # two workers and the resource tracker
        names = " ".join(" ".join(k.cmdline()) for k in kids)
        assert len(kids) >= 3 and "resource_tracker" in names, names
        srv.proc.send_signal(sig)
        srv.proc.wait(30)
        left = _wait_gone(kids, timeout=20)
    assert not left, f"still running after {sig.name}: {_describe(left)}"


AUTH_CONFIG = """
[scenarios.login]
executor = "constant-vus"
vus = 4
duration = "60s"
think_time = "0.2s"
[scenarios.login.device]
kind = "auth_flow"
[server]
analysis_workers = 1
"""


def test_killed_scfleet_run_leaves_no_server_and_no_password_file(tmp_path: Path) -> None:
    cfg = tmp_path / "auth.toml"
    cfg.write_text(AUTH_CONFIG)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "run"
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", str(cfg), "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: dict[str, str] = {}
    ready = threading.Event()

    def read_stderr() -> None:
        assert runner.stderr is not None
        for line in runner.stderr:
            m = re.search(r"embedded reference server at (\S+) \(pid (\d+)\)", line)
            if m:
                found.update(url=m.group(1), pid=m.group(2))
                ready.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert ready.wait(120), "the embedded server never started"
        server = psutil.Process(int(found["pid"]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # progress: devices have logged in
            with urllib.request.urlopen(found["url"] + "/api/stats", timeout=5) as resp:
                if json.loads(resp.read())["logins_ok"] >= 4:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("no login reached the embedded server")
        tree = [server, *_descendants(server.pid, at_least=2)]
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        left = _wait_gone(tree, timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.wait(10)
    for p in _alive(tree):  # do not leave them to the next test
        p.kill()
    assert not left, f"outlived the killed run: {_describe(left)}"
    with pytest.raises(OSError):
        urllib.request.urlopen(found["url"] + "/health", timeout=2)
    leftovers = [p for p in tmp.rglob("*")]
    assert not leftovers, f"left in TMPDIR: {leftovers}"
    csvs = [p for p in tmp_path.rglob("*.csv")]
    assert not csvs, f"password files left behind: {csvs}"


KILL_CONFIG = """
[scenarios.iot]
executor = "ramping-arrival-rate"
start_rate = 40
pre_allocated_devices = 5
max_devices = 50
graceful_stop = "1s"
stages = [{ duration = "3s", target = 40 }, { duration = "3s", target = 40 }]
[scenarios.iot.device]
kind = "iot_upload"
chunk_bytes = 3200
[server]
analysis_workers = 1
[target]
timeout = "2s"
"""


def test_killed_embedded_server_is_a_crash_not_connection_errors(tmp_path: Path) -> None:
    """The embedded server is scfleet's own child: killed, it is a zombie until reaped, and the
    sampler must see it dead so the stage table says crash."""
    cfg = tmp_path / "kill.toml"
    cfg.write_text(KILL_CONFIG)
    out = tmp_path / "run"
    runner = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", str(cfg), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: dict[str, str] = {}
    ready = threading.Event()
    lines: list[str] = []

    def read_stderr() -> None:
        assert runner.stderr is not None
        for line in runner.stderr:
            lines.append(line)
            m = re.search(r"embedded reference server at (\S+) \(pid (\d+)\)", line)
            if m:
                found.update(url=m.group(1), pid=m.group(2))
                ready.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert ready.wait(120), "the embedded server never started"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # into the second stage: 130 uploads ≈ 3.25 s
            with urllib.request.urlopen(found["url"] + "/api/stats", timeout=5) as resp:
                if json.loads(resp.read())["uploads_accepted"] >= 130:
                    break
            time.sleep(0.05)
        os.kill(int(found["pid"]), signal.SIGKILL)
        runner.wait(90)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["scfleet"]["stages"]["rows"]
    assert rows[0]["server_alive"] == 1 and rows[1]["server_alive"] == 0, rows
    verdict = summary["scfleet"]["stages"]["scenarios"]["iot"]
    assert verdict["bottleneck"] == "crash", (verdict, "".join(lines)[-2000:])
