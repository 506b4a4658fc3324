"""Where a running scfleet's CPU goes, function by function: py-spy on a real run against nginx.

``bench_hotpath.py`` times one request's Python in a tight loop; ``bench_procs.py`` splits a
run's CPU by process and syscall. This one samples the running event loop of a real run
(constant arrival rate, one worker, nginx on loopback: bench/nginx_target.py) with py-spy and
sums the samples by area (:data:`AREAS`): the fast client, the device iteration, the metrics,
the arrival driver, the tick, and the two parts that are not Python — the socket write (the
leaf is the ``tr.write``/``tr.writelines`` line: the kernel's TCP send, loopback delivery
included) and uvloop's own C (the leaf is the loop's ``run``: with ``--native``, mostly the
socket's ``read``; epoll, dispatch).

    pip install py-spy   # not a dependency: a profiler
    python bench/bench_pyspy.py --rate 7000 --body 1024 --duration 10 [--raw prof.txt]

Run as root on a busy machine: nginx and scfleet run at SCHED_FIFO ``--fifo`` and py-spy one
above, or a starved run collapses (drops, lag) and py-spy, starved too, samples mostly the idle
loop. py-spy pauses the process for each sample (``--nonblocking`` tears stacks: a call line is
taken for its callee's cost). The run's verdict figures are printed beside the table: a table
of a run that did not hold its rate is a table of a collapse. Shares only: py-spy's idle test
is no CPU clock (a 2,000/s run's loop samples made 255 µs a request, a 7,000/s run's 101 µs);
CPU per request is bench_procs.py's. Loopback only, bounded by the
duration + the 5 s graceful stop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ceiling import scfleet_config  # noqa: E402
from nginx_target import Nginx, raise_nofile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: A sample's area, by its innermost frame's file (first match wins); the write and the loop's
#: own C are told apart first (:func:`area`).
AREAS = (
    ("simulator/http/", "fast HTTP client (Python): head, parse, exchange"),
    ("simulator/run/devices.py", "device iteration: start, done, record"),
    ("<string>", "device iteration: start, done, record"),  # dataclass __init__
    ("audio_synth/", "audio bank: the body chunk"),
    ("simulator/metrics/", "metrics: record and fold"),
    ("numpy/", "metrics: record and fold"),
    ("simulator/executors/", "arrival driver: schedule, pool, plan, clock"),
    ("simulator/run/", "tick, snapshot, sampler, output"),
    ("simulator/report/", "tick, snapshot, sampler, output"),
    ("psutil/", "tick, snapshot, sampler, output"),
    ("json/", "tick, snapshot, sampler, output"),
    ("asyncio/", "asyncio (Python): timers, tasks, events"),
)
WRITE = "socket write: writev (kernel TCP send, loopback delivery)"
LOOP_C = "uvloop C: socket reads (read syscall), epoll, dispatch"
#: The event loop's entry frames: samples outside them (imports, setup, the report) are left out.
LOOP_ENTRIES = ("Runner.run (asyncio/runners.py", "BaseEventLoop.run_until_complete (")


def write_lines(source: Path = ROOT / "simulator/http/fast.py") -> frozenset[str]:
    """The fast client's socket-write frames (``_Exchange.begin (simulator/http/fast.py:N)``),
    from its source: a sample there is the kernel's send, whatever the line numbers are."""
    out = set()
    for n, line in enumerate(source.read_text().splitlines(), 1):
        if "tr.writelines(" in line or "tr.write(" in line:
            out.add(f"_Exchange.begin (simulator/http/fast.py:{n})")
    return frozenset(out)


def area(leaf: str, writes: frozenset[str]) -> str:
    """The area of a sample whose innermost frame is ``leaf`` (py-spy's ``func (file:line)``)."""
    if leaf in writes:
        return WRITE
    if leaf.startswith(LOOP_ENTRIES):
        return LOOP_C
    for needle, name in AREAS:
        if needle in leaf:
            return name
    return "other"


def table(raw: Iterable[str], writes: frozenset[str]) -> tuple[Counter[str], Counter[str], int]:
    """(samples by area, self samples by function, total) of py-spy ``--format raw`` lines,
    counting only samples inside the event loop (:data:`LOOP_ENTRIES`)."""
    areas: Counter[str] = Counter()
    funcs: Counter[str] = Counter()
    total = 0
    for line in raw:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")[1:]  # the first is the process
        if not any(f.startswith(LOOP_ENTRIES) for f in frames):
            continue
        n = int(count)
        total += n
        areas[area(frames[-1], writes)] += n
        funcs[frames[-1].rsplit(":", 1)[0] + ")"] += n
    return areas, funcs, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=7000, help="arrivals a second")
    ap.add_argument("--body", type=int, default=1024, help="upload size in bytes")
    ap.add_argument("--duration", type=int, default=10, help="seconds of schedule")
    ap.add_argument("--hz", type=int, default=200, help="py-spy samples a second")
    ap.add_argument("--fifo", type=int, default=20, help="SCHED_FIFO priority (0: none)")
    ap.add_argument("--warm", default="0", help="scfleet's [run] warm_connections: 0|auto|N")
    ap.add_argument("--raw", type=Path, help="keep py-spy's raw (collapsed) stacks here")
    ap.add_argument("--top", type=int, default=25, help="functions listed by self samples")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy (bench only)")
    scfleet = shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet")
    fifo = args.fifo if args.fifo and os.geteuid() == 0 else 0
    raise_nofile()
    with tempfile.TemporaryDirectory(prefix="bench-pyspy-") as tmp_name, Nginx() as nginx:
        tmp = Path(tmp_name)
        if fifo:
            import psutil

            master = psutil.Process(nginx.pid)
            for p in [master, *master.children(recursive=True)]:
                os.sched_setscheduler(p.pid, os.SCHED_FIFO, os.sched_param(fifo))
        cfg = tmp / "run.toml"
        cfg.write_text(scfleet_config(args.rate, args.duration, args.body, args.warm))
        raw = args.raw or tmp / "prof.txt"
        run = [scfleet, "run", str(cfg), "--target", nginx.url, "--workers", "1"]
        run += ["--out", str(tmp / "out"), "--quiet"]
        spy_cmd = [spy, "record", "--rate", str(args.hz), "--format", "raw", "-o", str(raw)]
        if fifo:
            spy_cmd = ["chrt", "-f", str(fifo + 10), *spy_cmd, "--", "chrt", "-f", str(fifo)]
        else:
            spy_cmd.append("--")
        proc = subprocess.run(
            [*spy_cmd, *run], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if proc.returncode not in (0, 99):  # 99: a threshold failed; the profile still holds
            raise SystemExit(f"scfleet run failed ({proc.returncode}): {proc.stderr.decode()}")
        summary = json.loads((tmp / "out" / "summary.json").read_text())
        areas, funcs, total = table(raw.read_text().splitlines(), write_lines())
    m = summary["metrics"]
    dropped = m.get("dropped_iterations", {}).get("count", 0)
    lag = summary["scfleet"]["start_accuracy"]["p99_ms"]
    print(
        f"{args.rate}/s × {args.duration} s, {args.body:,} B, 1 worker, warm {args.warm}"
        f"{f', FIFO {fifo}' if fifo else ''}: {m['http_reqs']['count']:,} requests, "
        f"{dropped:,} dropped, start lag p99 {lag} ms; load {os.getloadavg()[0]:.2f}"
    )
    print(f"{total:,} samples in the event loop at {args.hz} Hz\n")
    print("| area | share of samples |\n| --- | --- |")
    for name, n in areas.most_common():
        print(f"| {name} | {100 * n / max(total, 1):.1f} % |")
    print("\n| function (self) | share |\n| --- | --- |")
    for name, n in funcs.most_common(args.top):
        print(f"| {name} | {100 * n / max(total, 1):.1f} % |")


if __name__ == "__main__":
    main()
