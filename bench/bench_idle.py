"""Idle devices across workers: how much memory do 1,000,000 simulated devices take?

One ``scfleet run`` against nginx on loopback (bench/nginx_target.py) with a constant-arrival-rate
scenario at 1 iteration/s whose ``pre_allocated_devices`` = ``max_devices`` = ``--devices``: every
device is made at start (split over the workers, by global index) and all but a handful stay
idle — k6's preAllocatedVUs, which is how bench_fleet.py measures memory per idle device. A scenario
holds at most 1,000,000 devices (scfleet's per-scenario cap); more are several scenarios. The
process tree (coordinator + workers + multiprocessing's helper) is sampled with psutil every
``--every`` seconds: the peak of the summed USS (memory only that process holds), PSS and RSS.
A small run (``--small`` devices) is subtracted to give memory per device.

``--where N`` instead runs N idle devices in this process (one worker) under tracemalloc and
prints the top allocation sites when the run is over: where the memory per device goes.

    python bench/bench_idle.py [--devices 1000000] [--workers auto] [--duration 10]
    python bench/bench_idle.py --where 200000

Load goes to 127.0.0.1 only (1 request/s); the run is bounded by --duration (+ start-up).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nginx_target import Nginx, raise_nofile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL_BYTES = 1_000_000_000

#: scfleet's cap per scenario (simulator/config/model.py MAX_DEVICES): more devices than this
#: are split over several identical scenarios, each with its own device IDs
PER_SCENARIO = 1_000_000

SCENARIO = """
[scenarios.idle{k}]
executor = "constant-arrival-rate"
rate = 1
time_unit = "1s"
duration = "{duration}s"
pre_allocated_devices = {devices}
max_devices = {devices}
graceful_stop = "5s"
[scenarios.idle{k}.device]
chunk_bytes = 1024
id_pattern = "idle{k}-{{n:06d}}"
"""
AUDIO = """
[audio]
profiles = 4
seconds = 5
"""


def scenario_file(devices: int, duration: float) -> str:
    """``devices`` idle devices in scenarios of at most PER_SCENARIO each."""
    parts = []
    k = 0
    while devices > 0:
        n = min(devices, PER_SCENARIO)
        parts.append(SCENARIO.format(k=k, devices=n, duration=duration))
        devices -= n
        k += 1
    return "".join(parts) + AUDIO


@dataclass
class Memory:
    devices: int
    workers: str
    processes: int
    peak_uss_mb: float
    peak_pss_mb: float
    peak_rss_mb: float
    peak_at_s: float  # seconds after start when the summed USS peaked
    wall_s: float
    exit_code: int
    vus_max: int
    per_process_peak_uss_mb: dict[str, float]


def measure(
    url: str, devices: int, workers: str, duration: float, every: float, tmp: Path
) -> Memory:
    cfg = tmp / f"idle-{devices}.toml"
    cfg.write_text(scenario_file(devices, duration))
    out = tmp / f"run-{devices}-{time.monotonic_ns()}"
    scfleet = shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet")
    cmd = [
        scfleet,
        "run",
        str(cfg),
        "--target",
        url,
        "--out",
        str(out),
        "--quiet",
        "--workers",
        workers,
    ]
    t0 = time.monotonic()
    err_file = tmp / "stderr.txt"
    with err_file.open("wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=raise_nofile
        )
    root = psutil.Process(proc.pid)
    deadline = t0 + duration + 300  # start-up of 1M devices and the final write: bounded
    try:
        return _sample(proc, root, t0, deadline, devices, workers, every, out, err_file)
    except BaseException:  # SIGTERM (timeout(1)) or Ctrl-C: no run left behind
        with contextlib.suppress(psutil.Error):
            for child in root.children(recursive=True):
                child.kill()
        proc.kill()
        proc.wait()
        raise


def _sample(
    proc: subprocess.Popen[bytes],
    root: psutil.Process,
    t0: float,
    deadline: float,
    devices: int,
    workers: str,
    every: float,
    out: Path,
    err_file: Path,
) -> Memory:
    """Sample the tree's memory until the run ends; its summary's vus_max."""
    peak = (0.0, 0.0, 0.0)
    peak_at = 0.0
    nprocs = 0
    per_proc: dict[str, float] = {}
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise SystemExit(f"scfleet with {devices:,} devices did not finish in time")
        uss = pss = rss = 0
        seen = 0
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for p in tree:
            try:
                m = p.memory_full_info()
                name = "coordinator" if p.pid == root.pid else f"{p.pid} {p.name()}"
            except psutil.Error:
                continue
            uss, pss, rss, seen = uss + m.uss, pss + m.pss, rss + m.rss, seen + 1
            per_proc[name] = max(per_proc.get(name, 0.0), m.uss / 2**20)
        if uss > peak[0] * 2**20:
            peak = (uss / 2**20, pss / 2**20, rss / 2**20)
            peak_at = time.monotonic() - t0
        nprocs = max(nprocs, seen)
        time.sleep(every)
    code = proc.wait()
    wall = time.monotonic() - t0
    if code not in (0, 99):
        raise SystemExit(f"scfleet exited {code}: {err_file.read_text(errors='replace')[-400:]}")
    doc = json.loads((out / "summary.json").read_text())
    vus_max = int(doc["metrics"].get("vus_max", {}).get("value", 0))
    shutil.rmtree(out, ignore_errors=True)
    return Memory(devices, workers, nprocs, *peak, peak_at, wall, code, vus_max, per_proc)


def where(n: int) -> None:
    """Where n idle devices' memory goes: one in-process run (1 worker) under tracemalloc,
    snapshots before the run and when it is over (before the folder is written), and the
    traced peak including the folder's writing."""
    import tracemalloc

    from scfleet import api

    with Nginx() as nginx, tempfile.TemporaryDirectory(prefix="bench-idle-") as d:
        cfg_path = Path(d) / "idle.toml"
        cfg_path.write_text(scenario_file(n, 5))
        cfg = api.load(str(cfg_path))
        warm = Path(d) / "warm.toml"  # imports and one-time set-up, outside the snapshots
        warm.write_text(scenario_file(10, 1))
        api.run(api.load(str(warm)), target=nginx.url, out=Path(d) / "warm", workers=1)
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        snaps: list[tracemalloc.Snapshot] = []
        api.run(
            cfg,
            target=nginx.url,
            out=Path(d) / "run",
            workers=1,
            on_finished=lambda: snaps.append(tracemalloc.take_snapshot()),
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    stats = snaps[0].compare_to(before, "lineno")
    total = sum(st.size_diff for st in stats)
    print(
        f"{n:,} idle devices, one process: {total / 2**20:.1f} MiB traced when the run ends "
        f"({total / n:.0f} B per device); traced peak {peak / 2**20:.1f} MiB "
        f"({peak / n:.0f} B per device, the run folder's writing included)"
    )
    for st in stats[:10]:
        print(f"  {st.size_diff / n:7.1f} B/device  {st.traceback}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=1000, help="devices in the subtracted run")
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=0.25, help="seconds between samples")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--where", type=int, help="tracemalloc: where N devices' memory goes")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    if args.where:
        return where(args.where)
    workers = len(os.sched_getaffinity(0)) if args.workers == "auto" else int(args.workers)
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    runs: dict[str, Memory] = {}
    with Nginx() as nginx, tempfile.TemporaryDirectory(prefix="bench-idle-") as d:
        tmp = Path(d)

        def run(label: str, devices: int, w: int) -> Memory:
            """One run; scfleet refusing it (e.g. the open-file limit) ends the bench."""
            m = measure(nginx.url, devices, str(w), args.duration, args.every, tmp)
            runs[label] = m
            show(label, m)
            return m

        small = run("small", args.small, workers)
        big = run("big", args.devices, workers)
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    doc: dict[str, object] = {k: asdict(v) for k, v in runs.items()}
    doc.update(load_before=load_before, load_after=load_after)
    for label, m in runs.items():
        if label == "small" or m.workers != small.workers:
            continue  # per device only against a run with as many processes
        per_kib = (m.peak_uss_mb - small.peak_uss_mb) * 1024 / (m.devices - small.devices)
        doc[f"{label}_per_device_kib"] = per_kib
        print(f"{label}: {m.devices:,} devices → {per_kib:.2f} KiB per device over the small run")
    total = big.peak_uss_mb * 2**20
    doc["met"] = total <= GOAL_BYTES
    print(
        f"{big.devices:,} idle devices in {big.processes} processes: "
        f"{big.peak_uss_mb:,.0f} MiB USS in all ({total / 1e9:.2f} GB; goal ≤ 1 GB: "
        f"{'met' if total <= GOAL_BYTES else 'MISSED'})"
    )
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))


def show(label: str, m: Memory) -> None:
    procs = ", ".join(f"{k} {v:.0f}" for k, v in sorted(m.per_process_peak_uss_mb.items())[:6])
    print(
        f"  {label}: {m.devices:>9,} devices, --workers {m.workers}, {m.processes} processes: "
        f"peak USS {m.peak_uss_mb:,.0f} MiB · PSS {m.peak_pss_mb:,.0f} · RSS "
        f"{m.peak_rss_mb:,.0f} (at {m.peak_at_s:.1f} s of {m.wall_s:.1f} s), vus_max "
        f"{m.vus_max:,}; USS MiB per process: {procs}{' …' if m.processes > 6 else ''}",
        flush=True,
    )


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: the run is killed and nginx stopped by PID."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
