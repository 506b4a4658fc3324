"""Where a run's CPU goes, process by process: scfleet against nginx (bench/nginx_target.py).

    python bench/bench_procs.py --rates 4000,8000 --repeat 3 --fifo 10 --json out.json \
        --variants w1:1,auto:2,pin:2:1:SCFLEET_PIN_WORKERS=1,part:1:2:SCFLEET_BENCH_QUANTUM_OF=2

A variant is ``name:workers[xCOPIES][:rate divisor[:ENV=VALUE...]]``; the variants run
interleaved, at each rate, ``--repeat`` times. ``xCOPIES`` starts that many runs together, side by
side, each at the rate ÷ divisor (``pair:1x2:2:SCFLEET_BENCH_QUANTUM_OF=2``: ``auto``'s two
workers' shares as two one-process runs, without a coordinator), and counts them as one run:
their requests, rates and processes added up, so its CPU per request compares with ``auto:2``'s
and each process's line (``us/req``: its window CPU per request of its own share) with an
``auto`` worker's. Each run: psutil polls every process of the tree (user+sys,
context switches); after ``--settle`` s, ``perf stat -p PID`` counts ``--window`` s of each
process (coordinator, each worker): task-clock, context switches, CPU migrations, syscalls by
type. ``--fifo N`` runs nginx and the generator at SCHED_FIFO priority N (root): on a machine
busy with other jobs they then run whenever they are ready, as on a quiet one (label the
figures so). ``bench/bench_procs.py --summary out.json ...`` prints the medians per variant.
Needs ``perf`` with tracepoints (``raw_syscalls``, ``syscalls:sys_enter_*``). Loopback only;
each run is bounded by its duration + 120 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ceiling import SCFLEET_TOML, Bench  # noqa: E402
from nginx_target import Nginx, raise_nofile  # noqa: E402

# libuv (uvloop) batches its epoll_ctl calls through io_uring: they show as io_uring_enter
# syscalls and io_uring_submit_req events, not as epoll_ctl. sched_wakeup counts the wake-ups a
# process causes (on loopback its writes wake nginx's idle workers).
EVENTS = (
    "task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,"
    "io_uring:io_uring_submit_req,sched:sched_wakeup,"
) + ",".join(
    f"syscalls:sys_enter_{s}"
    for s in (
        "epoll_pwait",
        "epoll_wait",
        "epoll_pwait2",
        "recvmsg",
        "sched_yield",
        "nanosleep",
        "getrusage",
        "times",
        "sched_getaffinity",
        "epoll_ctl",
        "read",
        "recvfrom",
        "write",
        "writev",
        "sendto",
        "sendmsg",
        "futex",
        "getpid",
        "clock_nanosleep",
        "poll",
        "select",
        "pselect6",
        "mmap",
        "munmap",
        "brk",
        "ioctl",
        "madvise",
        "newfstatat",
        "lseek",
        "openat",
        "close",
        "connect",
        "socket",
        "getsockopt",
        "setsockopt",
        "timerfd_settime",
        "rt_sigprocmask",
        "io_uring_enter",
    )
)
#: syscalls per request by kind, in --summary (write+writev and the socket sends, ...)
PER_REQUEST = {
    "writes": ("write", "writev", "sendto", "sendmsg"),
    "reads": ("read", "recvfrom", "recvmsg"),
    "epoll_ctl": ("epoll_ctl", "io_uring:io_uring_submit_req"),
    "syscalls": ("raw_syscalls:sys_enter",),
    "wake-ups": ("sched:sched_wakeup",),
}


def perf_window(pid: int, seconds: float, out: dict[str, float]) -> None:
    r = subprocess.run(
        ["perf", "stat", "-x,", "-e", EVENTS, "-p", str(pid), "--", "sleep", str(seconds)],
        capture_output=True,
        text=True,
    )
    for line in r.stderr.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].replace(".", "").isdigit():
            out[parts[2].replace("syscalls:sys_enter_", "")] = float(parts[0])


def one_run(nginx, tmp, workers, rate, args, n, extra_env=()) -> dict:
    pre, mx = Bench.devices(rate)
    cfg = tmp / f"sc-{n}.toml"
    cfg.write_text(
        SCFLEET_TOML.format(rate=rate, duration=args.duration, pre=pre, max=mx, body=args.body)
    )
    out = tmp / f"run-{n}"
    scfleet = args.scfleet
    cmd = [scfleet, "run", str(cfg), "--target", nginx.url, "--out", str(out), "--quiet"]
    cmd += ["--workers", str(workers)]
    env = dict(os.environ, **dict(e.split("=", 1) for e in [*args.env, *extra_env]))

    def pre() -> None:
        raise_nofile()
        if args.nice:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        if args.fifo:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.fifo))

    proc = subprocess.Popen(
        cmd,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=pre,
        env=env,
    )
    root = psutil.Process(proc.pid)
    seen: dict[int, tuple[str, tuple]] = {}
    t0 = time.monotonic()
    perf: dict[int, dict[str, float]] = {}
    threads: list[threading.Thread] = []
    started = False
    load = os.getloadavg()[0]
    deadline = t0 + args.duration + 120
    while True:
        wpid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if wpid == proc.pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{cmd} did not finish within {args.duration + 120:g}s")
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                ct = p.cpu_times()
                cs = p.num_ctx_switches()
                cmdl = " ".join(p.cmdline())
                kind = (
                    "coord"
                    if p.pid == proc.pid
                    else "worker"
                    if "spawn_main" in cmdl
                    else "tracker"
                    if "resource_tracker" in cmdl
                    else "other"
                )
                seen[p.pid] = (kind, (ct.user, ct.system, cs.voluntary, cs.involuntary))
            except psutil.NoSuchProcess:
                pass
        if not started and time.monotonic() - t0 > args.settle:
            started = True
            load = os.getloadavg()[0]
            for pid, (kind, _v) in seen.items():
                if kind in ("coord", "worker"):
                    perf[pid] = {}
                    th = threading.Thread(target=perf_window, args=(pid, args.window, perf[pid]))
                    th.start()
                    threads.append(th)
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    for th in threads:
        th.join()
    doc = json.loads((out / "summary.json").read_text())
    m = doc["metrics"]
    reqs = int(m["http_reqs"]["count"])
    shutil.rmtree(out, ignore_errors=True)
    res = {
        "workers": workers,
        "rate": rate,
        "requests": reqs,
        "dropped": int(m.get("dropped_iterations", {}).get("count", 0)),
        "lag_p99_ms": doc["scfleet"]["start_accuracy"]["p99_ms"],
        "load1": load,
        "tree_cpu": ru.ru_utime + ru.ru_stime,
        "tree_nvcsw": ru.ru_nvcsw,
        "tree_nivcsw": ru.ru_nivcsw,
        "procs": [
            {
                "pid": pid,
                "kind": kind,
                "user": v[0],
                "sys": v[1],
                "vcs": v[2],
                "ivcs": v[3],
                "perf": perf.get(pid, {}),
            }
            for pid, (kind, v) in seen.items()
        ],
        "stderr": err[-300:],
    }
    return res


def side_by_side(nginx, tmp, workers, rate, args, n, extra_env, copies) -> dict:
    """``copies`` runs started together (threads), merged into one result."""
    if copies == 1:
        return one_run(nginx, tmp, workers, rate, args, n, extra_env)
    out: list[dict] = [{} for _ in range(copies)]

    def go(i: int) -> None:
        out[i] = one_run(nginx, tmp, workers, rate, args, n * 100 + i, extra_env)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(copies)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if not all(out):
        raise SystemExit(f"a side-by-side run of {copies} failed")
    merged = dict(out[0])
    merged["rate"] = rate * copies
    merged["share_rate"] = rate
    for key in ("requests", "dropped", "tree_cpu", "tree_nvcsw", "tree_nivcsw"):
        merged[key] = sum(r[key] for r in out)
    merged["lag_p99_ms"] = max(r["lag_p99_ms"] for r in out)
    merged["procs"] = [p for r in out for p in r["procs"]]
    merged["stderr"] = "".join(r["stderr"] for r in out)[-300:]
    return merged


def summarize(r: dict, window: float) -> str:
    rate = r["rate"]
    lines = [
        f"w{r['workers']} {rate:.0f}/s reqs {r['requests']} dropped {r['dropped']} "
        f"lag p99 {r['lag_p99_ms']:.2f} ms load {r['load1']:.1f} tree {r['tree_cpu']:.2f}s "
        f"= {r['tree_cpu'] / max(r['requests'], 1) * 1e6:.1f} us/req raw"
    ]
    for p in sorted(r["procs"], key=lambda p: (p["kind"], p["pid"])):
        if p["kind"] not in ("coord", "worker"):
            lines.append(f"  {p['kind']:<7} cpu {p['user'] + p['sys']:.2f}s")
            continue
        pf = p["perf"]
        tc = pf.get("task-clock", 0) / window  # ms/s
        # a worker's or a side-by-side copy's share of the rate (a coordinator of workers: all)
        each_run = r.get("share_rate", rate)
        share = each_run if p["kind"] == "coord" else each_run / r["workers"]
        each = f" = {tc / share * 1000:.1f} us/req" if share and tc else ""
        per = {k: v / window for k, v in pf.items() if k not in ("task-clock",) and v}
        top = ", ".join(f"{k} {v:.0f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:9])
        lines.append(
            f"  {p['kind']:<7} cpu {p['user'] + p['sys']:.2f}s (u {p['user']:.2f} s {p['sys']:.2f}) "
            f"window: {tc:.0f} ms/s{each}; /s: {top}"
        )
    return "\n".join(lines)


def summary(files: list[Path], window: float) -> None:
    """Medians (range) per variant and rate, over the perf windows of all its runs."""
    rows = [r for f in files for r in json.loads(f.read_text())]
    by: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        by.setdefault((r["label"], r["rate"]), []).append(r)

    def med(xs: list[float]) -> str:
        xs = sorted(xs)
        return f"{statistics.median(xs):.1f} ({xs[0]:.1f}-{xs[-1]:.1f})" if xs else "-"

    print(
        "| variant | rate | runs | CPU µs/request (window, all processes) | worker ms/s "
        "| each loaded process: µs/request of its share "
        "| epoll_pwait/request | context switches/request | migrations/s | lag p99 ms | dropped "
        + "".join(f"| {k}/request " for k in PER_REQUEST)
        + "|"
    )
    print("| --- " * (11 + len(PER_REQUEST)) + "|")
    for (lab, rate), rs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        us, ep, cs, mig, wk, each = [], [], [], [], [], []
        per: dict[str, list[float]] = {k: [] for k in PER_REQUEST}
        for r in rs:
            ps = [p for p in r["procs"] if p["kind"] in ("coord", "worker") and p["perf"]]

            def total(key: str, ps: list[dict] = ps) -> float:
                return sum(p["perf"].get(key, 0.0) for p in ps) / window

            us.append(total("task-clock") / rate * 1000)
            ep.append(total("epoll_pwait") / rate)
            cs.append(total("context-switches") / rate)
            mig.append(total("cpu-migrations"))
            wk += [p["perf"].get("task-clock", 0) / window for p in ps if p["kind"] == "worker"]
            # the processes that run the load (workers, or one-process runs) and each one's share
            loaded = [p for p in ps if p["kind"] == "worker"] or ps
            share = r.get("share_rate", rate) / (r["workers"] if r["workers"] > 1 else 1)
            each += [p["perf"].get("task-clock", 0) / window / share * 1000 for p in loaded]
            for k, names in PER_REQUEST.items():
                per[k].append(sum(total(n) for n in names) / rate)
        print(
            f"| {lab} | {rate:,.0f}/s | {len(rs)} | {med(us)} | {med(wk)} | {med(each)} "
            f"| {statistics.median(ep):.2f} | {statistics.median(cs):.3f} "
            f"| {statistics.median(mig):.0f} | {med([r['lag_p99_ms'] for r in rs])} "
            f"| {sum(r['dropped'] for r in rs)} "
            + "".join(
                f"| {statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f}) " for v in per.values()
            )
            + "|"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="4000,8000")
    ap.add_argument("--variants", default="w1:1,auto:2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duration", type=float, default=12)
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--window", type=float, default=5)
    ap.add_argument("--body", type=int, default=32000)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--scfleet",
        default=shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet"),
    )
    ap.add_argument("--summary", type=Path, nargs="+", help="only print these JSON files' medians")
    ap.add_argument("--env", action="append", default=[], help="K=V for the generator")
    ap.add_argument("--label", default="")
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--fifo", type=int, default=0)
    args = ap.parse_args()
    if args.summary:
        return summary(args.summary, args.window)
    results = []
    n = 0
    with Nginx() as nginx, tempfile.TemporaryDirectory(prefix="pin-measure-") as d:
        if args.nice:
            for p in [
                psutil.Process(nginx.pid),
                *psutil.Process(nginx.pid).children(recursive=True),
            ]:
                p.nice(args.nice)
        if args.fifo:
            for p in [
                psutil.Process(nginx.pid),
                *psutil.Process(nginx.pid).children(recursive=True),
            ]:
                os.sched_setscheduler(p.pid, os.SCHED_FIFO, os.sched_param(args.fifo))
        for rep in range(args.repeat):
            for rate in [float(x) for x in args.rates.split(",")]:
                for var in args.variants.split(","):
                    name, w, div, *kv = (
                        (var + ":1").split(":") if var.count(":") < 2 else var.split(":")
                    )
                    w, _x, copies = w.partition("x")
                    n += 1
                    r = side_by_side(
                        nginx,
                        Path(d),
                        int(w),
                        rate / float(div or 1),
                        args,
                        n,
                        [x for x in kv if x],
                        int(copies or 1),
                    )
                    r["repeat"] = rep
                    r["label"] = name
                    print(f"[{name}]", end=" ")
                    results.append(r)
                    print(summarize(r, args.window), flush=True)
                    if args.json:
                        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
