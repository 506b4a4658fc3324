"""What committing each upload before answering costs the reference server.

Starts ``python -m reference_server`` twice per repeat on a fresh data dir: once as shipped
(each upload answered after its ledger row is group-committed) and once with
``--unsafe-ack-before-commit`` (answered first, committed later: the old behaviour, which loses
acknowledged uploads on kill -9). Each is driven closed-loop by ``--concurrency`` keep-alive
connections posting seed scenario 2's upload (a ``--bytes`` raw PCM body with unique
X-Device-ID/X-Sequence) for ``--duration`` seconds; it reports uploads/s and p50/p99 latency,
the median and range over ``--repeat`` runs, and the ratio commit-before-ack / ack-first.

    python bench/bench_ledger.py [--duration 10] [--concurrency 32] [--bytes 32000] [--repeat 3]

The client runs on the same machine (loopback only), so on two cores it competes with the
server: figures are relative, and a busy machine makes both modes slower alike (the modes
alternate within each repeat for that reason). Every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPLOAD_PATH = "/api/esp32/audio/upload"
MODES = {"commit-before-ack": [], "ack-first (unsafe)": ["--unsafe-ack-before-commit"]}


@dataclass(frozen=True)
class Figures:
    uploads_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    mean_group: float  # rows per ledger commit


def _start(data_dir: Path, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "reference_server", "--data-dir", str(data_dir)]
    cmd += ["--port", "0", "--analysis-workers", "1", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"bench_ledger: server did not start: {line!r}")
    return proc, line.split()[1]


async def _drive(url: str, duration: float, concurrency: int, nbytes: int) -> tuple[int, list]:
    import aiohttp

    body = b"\1\0" * (nbytes // 2)
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:

        async def device(i: int) -> None:
            nonlocal errors
            headers = {
                "Content-Type": "application/octet-stream",
                "X-Device-ID": f"bench-{i:04d}",
                "X-Sample-Rate": "16000",
            }
            seq = 0
            while (start := time.perf_counter()) < end:
                try:
                    async with http.post(
                        UPLOAD_PATH, data=body, headers={**headers, "X-Sequence": str(seq)}
                    ) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                seq += 1
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        await asyncio.gather(*(device(i) for i in range(concurrency)))
    return errors, latencies


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/api/stats", timeout=10) as resp:
        return json.loads(resp.read())


def run_once(extra: list[str], duration: float, concurrency: int, nbytes: int) -> Figures:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        proc, url = _start(Path(tmp), extra)
        try:
            errors, lat = asyncio.run(_drive(url, duration, concurrency, nbytes))
            stats = _stats(url)
        finally:
            proc.terminate()
            proc.wait(30)
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [0.0] * 99
    commits = max(1, int(stats.get("ledger_commits", 0)))
    return Figures(
        uploads_per_s=len(lat) / duration,
        p50_ms=q[49] * 1000,
        p99_ms=q[98] * 1000,
        errors=errors,
        mean_group=stats["ledger_written"] / commits if "ledger_commits" in stats else 0.0,
    )


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    ap.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    ap.add_argument("--bytes", type=int, default=32000, help="upload body size (default 32000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode (default 3)")
    args = ap.parse_args(argv)
    if not (0 < args.duration <= 600 and 0 < args.concurrency <= 1000 and args.repeat >= 1):
        ap.error("--duration 0..600, --concurrency 1..1000, --repeat >= 1")
    results: dict[str, list[Figures]] = {mode: [] for mode in MODES}
    for r in range(args.repeat):
        for mode, extra in MODES.items():
            fig = run_once(extra, args.duration, args.concurrency, args.bytes)
            results[mode].append(fig)
            print(
                f"run {r + 1} {mode:20s} {fig.uploads_per_s:8.1f} uploads/s  "
                f"p50 {fig.p50_ms:6.2f} ms  p99 {fig.p99_ms:6.2f} ms  errors {fig.errors}  "
                f"rows/commit {fig.mean_group:.1f}",
                flush=True,
            )
    print(
        f"\n{args.concurrency} connections, {args.bytes}-byte uploads, {args.duration:g} s x "
        f"{args.repeat}; median (min-max)"
    )
    print(f"{'mode':22s} {'uploads/s':>22s} {'p50 ms':>22s} {'p99 ms':>22s}")
    for mode, figs in results.items():
        print(
            f"{mode:22s} {_summary([f.uploads_per_s for f in figs]):>22s} "
            f"{_summary([f.p50_ms for f in figs]):>22s} {_summary([f.p99_ms for f in figs]):>22s}"
        )
    safe, unsafe = (results[m] for m in MODES)

    def ratio(get: object) -> float:
        return statistics.median([get(f) for f in safe]) / statistics.median(  # type: ignore[operator]
            [get(f) for f in unsafe]  # type: ignore[operator]
        )

    print(
        f"commit-before-ack / ack-first: throughput x{ratio(lambda f: f.uploads_per_s):.2f}, "
        f"p50 x{ratio(lambda f: f.p50_ms):.2f}, p99 x{ratio(lambda f: f.p99_ms):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
