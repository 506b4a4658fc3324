"""Soak: does the generator's memory level off on a long run at a steady rate?

Runs `scfleet run` at a constant arrival rate (seed scenario 2's 32,000-byte upload) against the
loopback sink (bench/sink_server.py) for --minutes, samples the generator's RSS every --every
seconds with psutil, and prints the RSS curve and the growth in each quarter of the run. A leak
keeps growing in the last quarter; bounded state (HDR buckets, connection pools) levels off.

    python bench/bench_soak.py [--rate 300] [--minutes 10] [--every 5]

Load goes to 127.0.0.1 only and the run is bounded by --minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]

TOML = """
[scenarios.soak]
executor = "constant-arrival-rate"
rate = {rate}
time_unit = "1s"
duration = "{seconds}s"
pre_allocated_devices = {pre}
max_devices = {pre}
graceful_stop = "5s"
[scenarios.soak.device]
chunk_bytes = 32000
[audio]
profiles = 4
seconds = 5
"""


def start_sink() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink_server.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise SystemExit(f"sink did not start: {line!r}")
    return proc, line.split()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    args = ap.parse_args()
    seconds = round(args.minutes * 60)
    sink, url = start_sink()
    samples: list[tuple[float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            cfg = tmp / "soak.toml"
            pre = max(50, int(args.rate / 5))
            cfg.write_text(TOML.format(rate=args.rate, seconds=seconds, pre=pre))
            out = tmp / "run"
            scfleet = shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet")
            gen = subprocess.Popen(
                [scfleet, "run", str(cfg), "--target", url, "--out", str(out), "--quiet"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            ps = psutil.Process(gen.pid)
            t0 = time.monotonic()
            deadline = t0 + seconds + 120
            while gen.poll() is None and time.monotonic() < deadline:
                try:
                    samples.append((time.monotonic() - t0, ps.memory_info().rss / 2**20))
                except psutil.NoSuchProcess:
                    break
                time.sleep(args.every)
            if gen.poll() is None:
                gen.kill()
                raise SystemExit("scfleet did not finish in time")
            err = gen.stderr.read().decode(errors="replace") if gen.stderr else ""
            if gen.returncode not in (0, 99):
                raise SystemExit(f"scfleet exited {gen.returncode}: {err[-500:]}")
            summary = json.loads((out / "summary.json").read_text())
            reqs = summary["metrics"]["http_reqs"]["count"]
    finally:
        sink.terminate()
        sink.wait()
    run = [(t, r) for t, r in samples if t <= seconds]
    print(f"{reqs:,} requests in {seconds} s at {args.rate:g}/s; RSS samples: {len(run)}")
    for t, r in run[:: max(1, len(run) // 20)]:
        print(f"  t={t:6.0f} s  RSS {r:7.1f} MB")
    if len(run) >= 8:
        q = len(run) // 4
        quarters = [run[0], run[q], run[2 * q], run[3 * q], run[-1]]
        growth = [b[1] - a[1] for a, b in zip(quarters, quarters[1:], strict=False)]
        print(
            "growth per quarter (MB): " + ", ".join(f"{g:+.2f}" for g in growth),
            f"; total after the first minute: {run[-1][1] - _at(run, 60):+.2f} MB",
        )


def _at(run: list[tuple[float, float]], t: float) -> float:
    """RSS of the first sample at or after t seconds."""
    return next((r for s, r in run if s >= t), run[-1][1])


if __name__ == "__main__":
    main()
