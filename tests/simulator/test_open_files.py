"""The open-file limit (issue 12, deliver 3): raised to what the run needs at start, or a
one-line error naming how many it needs — never a run that collapses on "Too many open files"."""

from __future__ import annotations

import json
import pathlib
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from scfleet import api
from simulator.run.limits import MARGIN, files_needed

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _limited(soft: int, hard: int) -> Any:
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _run_limited(soft: int, hard: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``scfleet run ARGS`` in a subprocess whose open-file limits are ``soft``/``hard``."""
    return subprocess.run(
        [sys.executable, "-m", "scfleet", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited(soft, hard),
    )


def test_files_needed_is_the_peak_device_need_per_process() -> None:
    cfg = api.load(ROOT / "configs" / "smoke.toml")
    assert files_needed(cfg) == 50 + MARGIN  # max_devices
    assert files_needed(cfg, 2) == 25 + MARGIN  # each worker's share of the pool
    assert files_needed(cfg, 3) == 17 + MARGIN


def test_the_soft_limit_is_raised_and_the_hard_limit_refused() -> None:
    code = (
        "from simulator.run.limits import ensure_open_files, OpenFileLimit\n"
        "import resource\n"
        "assert ensure_open_files(300) == 300\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE) == (300, 512)\n"
        "try:\n"
        "    ensure_open_files(900)\n"
        "except OpenFileLimit as exc:\n"
        "    print(exc)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limited(256, 512),
    )
    assert res.returncode == 0, res.stderr
    assert "needs 900 open files" in res.stdout and "hard limit is 512" in res.stdout


IDLE = (
    '[scenarios.idle]\nexecutor = "constant-arrival-rate"\nrate = {rate}\nduration = "{secs}s"\n'
    'pre_allocated_devices = {devices}\nmax_devices = {devices}\ngraceful_stop = "2s"\n'
    '[scenarios.idle.device]\nkind = "iot_upload"\nchunk_bytes = 100\n'
)


def test_files_needed_counts_devices_in_flight_not_devices_allocated(
    tmp_path: pathlib.Path,
) -> None:
    """An idle fleet: 100,000 pre-allocated devices at 1 iteration/s for 10 s can have at most
    10 requests in flight (one per started iteration). Before, the need was sized by devices
    allocated (100,000 + MARGIN), so a 20,000-file container refused it."""
    path = tmp_path / "idle.toml"
    path.write_text(IDLE.format(rate=1, secs=10, devices=100_000))
    cfg = api.load(path)
    assert files_needed(cfg) == 10 + MARGIN
    assert files_needed(cfg, 2) == 5 + MARGIN  # each segment starts half the iterations
    # looping VUs are all in flight at once: those still count one each
    vus = tmp_path / "vus.toml"
    vus.write_text(
        '[scenarios.v]\nexecutor = "constant-vus"\nvus = 3000\nduration = "5s"\n'
        '[scenarios.v.device]\nkind = "iot_upload"\n'
    )
    assert files_needed(api.load(vus)) == 3000 + MARGIN
    assert files_needed(api.load(vus), 2) == 1500 + MARGIN


@pytest.mark.slow  # a 2 s run in a subprocess; the rule itself is checked just above
def test_more_devices_than_files_but_few_in_flight_runs(
    tmp_path: pathlib.Path, http_sink: Callable[..., str]
) -> None:
    """5,000 idle devices under a hard limit of 1,024 open files, 2 iterations/s: the run
    goes (before: refused, exit 103, "needs 5128 open files") and every request succeeds."""
    url = http_sink(delay=1.0)  # every upload holds its connection for a second
    cfg = tmp_path / "idle.toml"
    cfg.write_text(IDLE.format(rate=2, secs=2, devices=5000))
    out = tmp_path / "run"
    res = _run_limited(
        1024,
        1024,
        str(cfg),
        "--out",
        str(out),
        "--quiet",
        "--target",
        url,
        "--workers",
        "1",
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    # 4 arrivals, started or (a loaded machine's loop reaching them late) dropped and counted
    dropped = summary["metrics"].get("dropped_iterations", {}).get("count", 0)
    assert summary["metrics"]["http_reqs"]["count"] + dropped == 4, summary["metrics"]
    assert summary["metrics"]["http_req_failed"]["passes"] == 0
    assert len((out / "devices.csv").read_text().splitlines()) == 5000 + 1


def test_a_need_above_the_hard_limit_is_one_line_before_anything_starts(
    tmp_path: pathlib.Path,
) -> None:
    out = tmp_path / "run"
    cfg = tmp_path / "vus.toml"  # 5,000 looping devices: 5,000 requests may be in flight
    cfg.write_text(
        '[scenarios.v]\nexecutor = "constant-vus"\nvus = 5000\nduration = "5s"\n'
        '[scenarios.v.device]\nkind = "iot_upload"\n'
    )
    res = _run_limited(
        1024,
        1024,
        str(cfg),
        "--out",
        str(out),
        # one process needs the whole fleet's files (with workers, the largest segment's)
        "--target",
        "http://127.0.0.1:9",
        "--workers",
        "1",
    )
    assert res.returncode == 103, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"needs {5000 + MARGIN} open files" in lines[0], res.stderr
    assert "1024" in lines[0] and not out.exists()  # no server started, no folder left


@pytest.mark.slow
def test_many_devices_in_flight_under_a_low_soft_limit_do_not_fail(
    tmp_path: pathlib.Path, http_sink: Callable[..., str]
) -> None:
    """150 uploads in flight at once with a soft limit of 100 open files: before the limit was
    raised at start, connects failed with EMFILE (errors); now every request succeeds."""
    url = http_sink(delay=1.0)  # every upload holds its connection for a second
    cfg = tmp_path / "many.toml"
    cfg.write_text(
        '[scenarios.up]\nexecutor = "constant-arrival-rate"\nrate = 150\nduration = "2s"\n'
        'pre_allocated_devices = 160\nmax_devices = 320\ngraceful_stop = "5s"\n'
        '[scenarios.up.device]\nkind = "iot_upload"\nchunk_bytes = 1000\n'
    )
    out = tmp_path / "run"
    res = _run_limited(
        100,
        4096,
        str(cfg),
        "--out",
        str(out),
        "--quiet",
        "--target",
        url,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    # 300 arrivals, started or (a loaded machine's loop reaching them late) dropped and counted
    dropped = summary["metrics"].get("dropped_iterations", {}).get("count", 0)
    assert summary["metrics"]["http_reqs"]["count"] + dropped == 300, summary["metrics"]
    assert summary["metrics"]["http_req_failed"]["passes"] == 0


@pytest.mark.slow  # waits out a request timeout (~1 s): the fast tier stays under 60 s
def test_a_timed_out_upload_to_a_server_that_stopped_reading_frees_its_socket() -> None:
    """The open-file need counts one socket per request in flight, so a request that ended
    must free its socket. A server that accepts and stops reading (overloaded, stuck) leaves
    the upload's unsent bytes in the write buffer; closing gracefully waits for them to drain,
    which never happens, so each timed-out request kept its descriptor and a long run against
    a stuck server grew past the limit (before: 5 sockets left open after 5 timeouts)."""
    import asyncio
    import os
    import socket

    from simulator.http import ErrorKind, FastTransport, Request

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(srv.accept()[0])  # accepted, never read
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()

    def sockets() -> int:
        fds = os.listdir("/proc/self/fd")
        return sum(
            os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            for fd in fds
            if os.path.exists(f"/proc/self/fd/{fd}")
        )

    async def main() -> int:
        tr = FastTransport(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=0.15)
        await tr.start()
        body = b"x" * (8 << 20)  # more than the socket buffers hold
        base = sockets()
        for _ in range(5):  # one device: one request at a time
            resp = await tr.send(Request("POST", "/up", {}, body, True))
            assert resp.status == 0 and resp.kind is ErrorKind.TIMEOUT
        await asyncio.sleep(0.3)
        left = sockets() - base - len(held)  # ours, not the server's accepted ends
        await tr.close()
        return left

    from simulator.executors.runtime import new_loop

    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:  # the run's loop (uvloop)
            left = runner.run(main())
    finally:
        srv.close()
        for s in held:
            s.close()
    assert left <= 1, f"{left} sockets still open after 5 timed-out uploads"
