"""``scfleet run --workers N`` (issue 12): N processes, each one execution segment, merged into
one run folder that matches the server's ledger exactly and looks like a one-process run's."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

LONG = "scenarios.iot_upload.stages=[{duration='2s',target=20},{duration='60s',target=20}]"


def _check_ledger(out: pathlib.Path, *, cut_short: bool = False) -> int:
    """summary.json counts equal the server's ledger: every device ID and sequence once.

    ``cut_short``: the run was stopped with requests in flight. Each was an interrupted
    iteration that had taken its sequence; the server may have recorded it though no response
    came back, so the ledger holds every counted request and some of the interrupted ones."""
    summary = json.loads((out / "summary.json").read_text())
    sent = int(summary["metrics"]["http_reqs"]["count"])
    cut = summary["scfleet"]["metrics"].get("interrupted_iterations", {}).get("count", 0)
    db = sqlite3.connect(out / "server" / "ledger.sqlite")
    rows = db.execute("SELECT device_id, sequence FROM uploads").fetchall()
    assert len(set(rows)) == len(rows)  # no (device, sequence) twice
    with open(out / "devices.csv") as fh:
        devices = list(csv.DictReader(fh))
    assert len({d["device_id"] for d in devices}) == len(devices)  # each device in one worker
    assert sum(int(d["requests"]) for d in devices) == sent
    by_dev: dict[str, list[int]] = {}
    for dev, seq in rows:
        by_dev.setdefault(dev, []).append(seq)
    taken = {d["device_id"]: int(d["next_sequence"]) for d in devices}
    if not cut_short:
        assert cut == 0 and len(rows) == sent
    assert sent <= len(rows) <= sent + cut
    assert sum(taken.values()) == sent + cut  # each sequence counted once: sent or cut
    for dev, seqs in by_dev.items():
        assert dev in taken and max(seqs) < taken[dev]  # none the device had not taken
    if not cut_short:
        for dev, n in taken.items():
            assert sorted(by_dev.get(dev, [])) == list(range(n))
    return sent


def _dropped(out: pathlib.Path) -> int:
    """The run's dropped arrivals: a loop that reached them late (a loaded machine) drops them,
    counted, as the README says. They took no device sequence, so the ledger check is exact
    without them; only a schedule's planned total is started + dropped."""
    summary = json.loads((out / "summary.json").read_text())
    return int(summary["metrics"].get("dropped_iterations", {}).get("count", 0))


def _shape(out: pathlib.Path) -> tuple[set[str], set[str], set[str]]:
    summary = json.loads((out / "summary.json").read_text())
    files = {p.name for p in out.iterdir()}
    # dropped_iterations is in the summary only when some were dropped (as k6 leaves it out):
    # whether a loaded machine's loop dropped one is no part of a run folder's shape
    metrics = set(summary["metrics"]) - {"dropped_iterations"}
    return files, metrics, set(summary["scfleet"])


def test_two_and_three_workers_match_the_ledger_and_a_one_process_run(
    tmp_path: pathlib.Path, scfleet: Any
) -> None:
    single = tmp_path / "one"  # the one-process run the merged ones must look like
    res = scfleet("run", "configs/smoke.toml", "--out", str(single), "--quiet", "--workers", "1")
    assert res.returncode == 0, res.stderr
    planned = 230  # 20/s for 4 s, 20→40 over 1 s, 40/s for 3 s
    assert _check_ledger(single) + _dropped(single) == planned
    for n in (2, 3):
        out = tmp_path / f"w{n}"
        res = scfleet(
            "run", "configs/smoke.toml", "--out", str(out), "--quiet", "--workers", str(n)
        )
        assert res.returncode == 0, res.stderr + res.stdout
        sent = _check_ledger(out)
        assert sent + _dropped(out) == planned  # the union of the segments is the schedule
        with open(out / "devices.csv") as fh:
            devices = list(csv.DictReader(fh))
        assert [d["device_id"] for d in devices] == sorted(d["device_id"] for d in devices)
        assert _shape(out) == _shape(single)
        timeline = json.loads((out / "timeline.json").read_text())
        assert sum(p["scenarios"]["iot_upload"]["requests"] for p in timeline) == sent


def _children(proc: subprocess.Popen[str], deadline: float, want: int) -> list[psutil.Process]:
    while time.time() < deadline:
        kids = [
            c
            for c in psutil.Process(proc.pid).children()
            if "--multiprocessing-fork" in c.cmdline()  # a spawned worker
        ]
        if len(kids) >= want:
            return kids
        time.sleep(0.1)
    raise AssertionError("workers never started")


def _start_long(
    out: pathlib.Path, *extra: str, tmp: pathlib.Path | None = None
) -> subprocess.Popen[str]:
    env = None if tmp is None else {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.Popen(
        [sys.executable, "-m", "scfleet", "run", "configs/smoke.toml", "--set", LONG]
        + ["--out", str(out), "--workers", "2", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_ticks(proc: subprocess.Popen[str], out: pathlib.Path, n: int) -> None:
    deadline = time.time() + 120
    stream = out / "run.ndjson"  # one line per second of run time: wait on progress
    while time.time() < deadline and proc.poll() is None:
        if stream.exists() and stream.read_text().count('"type":"tick"') >= n:
            return
        time.sleep(0.1)
    raise AssertionError("the run never made progress")


def test_sigterm_stops_every_worker_and_writes_the_merged_result(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    samples = tmp_path / "samples.json"
    scratch = tmp_path / "tmp"  # the workers' device-row parts go there (TMPDIR)
    scratch.mkdir()
    proc = _start_long(out, "--out", f"json={samples}", tmp=scratch)
    kids = _children(proc, time.time() + 120, 2)
    _wait_ticks(proc, out, 4)
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 105, stderr
    assert "Traceback" not in stderr
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scfleet"]["state"]["interrupted"] is True
    reqs = summary["metrics"]["http_reqs"]["count"]
    assert reqs > 40  # both workers' requests were merged
    db = sqlite3.connect(out / "server" / "ledger.sqlite")
    (n,) = db.execute("SELECT count(*) FROM uploads").fetchone()
    cut = summary["scfleet"]["metrics"].get("interrupted_iterations", {}).get("count", 0)
    assert reqs <= n <= reqs + cut
    # the per-sample stream holds what was measured: every request of the summary, once
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert sum(d.get("metric") == "http_reqs" and d["type"] == "Point" for d in lines) == reqs
    assert not (out / ".worker-parts").exists()
    # devices.csv too, merged from the workers' parts, which are gone with the run
    with open(out / "devices.csv") as fh:
        assert sum(int(r["requests"]) for r in csv.DictReader(fh)) == reqs
    assert not list(scratch.iterdir())


def test_a_dead_worker_is_named_and_the_run_ends_with_exit_103(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    proc = _start_long(out)
    kids = _children(proc, time.time() + 120, 2)
    _wait_ticks(proc, out, 3)
    victim = kids[0]
    victim.kill()
    _stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 103, stderr
    assert "worker" in stderr and f"pid {victim.pid}" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())  # what was merged is written
    assert summary["metrics"]["http_reqs"]["count"] > 20


def test_abort_on_fail_stops_all_workers_within_a_tick(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    started = time.time()
    proc = _start_long(
        out, "--quiet", "--set", "thresholds.http_reqs=[{threshold='count<30',abort_on_fail=true}]"
    )
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 99, stderr
    assert time.time() - started < 50  # far from the 62 s schedule
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scfleet"]["state"]["abortedBy"] == "http_reqs: count<30"
    # 20/s over two workers: the threshold fails at ~1.5 s; stopped within a tick or two
    assert 30 <= summary["metrics"]["http_reqs"]["count"] < 30 + 20 * 3
    _check_ledger(out, cut_short=True)  # the abort cuts what is in flight
