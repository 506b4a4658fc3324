"""Is a half-rate loop's dearer request the machine or the code? Fixed pure-Python work, paced.

    python bench/bench_halfrate.py --repeat 10 --duration 3 --settle 0.5 --fifo 20 --pin 1 \
        --variants plain:2000,plain:4000,plain:2000:4,plain:4000:1

Each run is one child process with a uvloop loop that does the same fixed pure-Python unit of
work (parse a response head, update a histogram, build a request head, touch 8 of the rate × 5
per-device dicts: each device is touched as often at any rate) ``rate`` times a second, woken
every ``quantum`` ms as the arrival driver is. No sockets, no scfleet code: if a unit costs more
at 2,000/s than at 4,000/s here, that is not scfleet's doing. A variant is
``mode:rate[:quantum ms]``; the variants run interleaved, ``--repeat`` rounds. Per run: the
process's CPU per unit (``time.process_time`` after ``--settle`` s, minus the same loop's empty
ticks, measured in the same round), the in-batch wall time per unit (``work``), and the median
of the first unit of each wake-up and of the others (how much slower a unit is right after the
loop was away).

Modes:

- ``plain``: nothing else of ours runs.
- ``spin``: a ``SCHED_IDLE`` spinner pinned to each core (a C loop if ``cc`` is there), so a
  vCPU never runs out of work and never halts; it yields to any other task at once.
- ``busy``: the loop never sleeps: it busy-waits for its next tick (``work`` only; its CPU is all
  of the run).
- ``pollute``: the child pinned to CPU 0, a process on CPU 1 sweeping 2 × 64 MB.

The table: medians (range) per variant, and each round's ``work`` against the same mode's
highest-rate run at the default quantum in that round. Bounded: every child, spinner and
polluter ends by its own deadline (and is killed by its PID when its run ends).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def child(
    rate: float, duration: float, settle: float, quantum_ms: float, pin: int, busy: bool
) -> None:
    """Pace ``rate`` units a second on a uvloop loop and print the measurement as JSON."""
    import asyncio

    import uvloop

    if pin >= 0:
        os.sched_setaffinity(0, {pin})
    head = (
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 23:00:00 GMT\r\n"
        b"Content-Type: application/json\r\nContent-Length: 27\r\nConnection: keep-alive\r\n"
        b"X-Request-ID: 0123456789abcdef\r\n\r\n"
    )
    # Five devices per unit a second, as a worker holds its segment's devices: each device is
    # touched as often at 2,000/s as at 4,000/s.
    n_dev = max(int(rate * 5), 16)
    devices = [{"seq": 0, "id": f"dev-{n:06d}", "ok": 0, "lat": []} for n in range(n_dev)]
    hist: dict[int, int] = {}
    mask = len(devices) - 1

    def unit(i: int) -> int:
        lines = head.split(b"\r\n")
        status = int(lines[0][9:12])
        fields = {}
        for ln in lines[1:]:
            if ln:
                k, _, v = ln.partition(b":")
                fields[k.lower()] = v.strip()
        length = int(fields[b"content-length"])
        x = 0
        for j in range(8):
            d = devices[((i * 7919 + j * 104729) & 0x7FFFFFFF) % mask]
            d["seq"] += 1
            d["ok"] += status == 200
            lat = d["lat"]
            lat.append(length + j)
            if len(lat) > 4:
                del lat[0]
            x += d["seq"]
        us = (i * 2654435761) & 0xFFFFF
        b = us.bit_length() * 16 + ((us >> max(us.bit_length() - 5, 0)) & 15)
        hist[b] = hist.get(b, 0) + 1
        req = (
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Device-ID: %s\r\nX-Seq: %d\r\n\r\n"
            % (
                devices[i & mask]["id"].encode(),
                x,
            )
        )
        return len(req)

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        done = 0
        wakes = 0
        firsts: list[int] = []
        rests: list[int] = []
        work = [0]
        t0 = loop.time()
        stop = t0 + duration
        measure_from = t0 + settle
        cpu0 = wall0 = 0.0
        units0 = wakes0 = 0
        finished = loop.create_future()
        q = quantum_ms / 1000

        def tick() -> None:
            nonlocal done, wakes, cpu0, wall0, units0, wakes0, measure_from
            now = loop.time()
            if measure_from and now >= measure_from:
                cpu0, wall0, units0, wakes0 = time.process_time(), now, done, wakes
                measure_from = 0.0
            if now >= stop:
                finished.set_result(None)
                return
            wakes += 1
            due = int((now - t0) * rate) - done
            pc = time.perf_counter_ns
            for k in range(due):
                a = pc()
                unit(done)
                e = pc() - a
                done += 1
                if not measure_from:
                    (firsts if k == 0 else rests).append(e)
                    work[0] += e
            if busy:  # never leave the CPU: wait for the next tick on it
                until = time.monotonic() + q
                while time.monotonic() < until:
                    pass
                loop.call_soon(tick)
            else:
                loop.call_at(now + q, tick)

        loop.call_soon(tick)
        await finished
        cpu = time.process_time() - cpu0
        wall = loop.time() - wall0
        return {
            "rate": rate,
            "units": done - units0,
            "wakes": wakes - wakes0,
            "cpu_s": cpu,
            "wall_s": wall,
            "first_ns": statistics.median(firsts) if firsts else 0.0,
            "rest_ns": statistics.median(rests) if rests else 0.0,
            "work_ns": work[0] / max(len(firsts) + len(rests), 1),
        }

    res = uvloop.run(main())
    print(json.dumps(res), flush=True)


SPIN_C = (
    "#include <stdlib.h>\n#include <unistd.h>\n"
    'int main(int c, char **v) { alarm(atoi(v[1])); for (;;) __asm__ volatile(""); }\n'
)
HELPER_SECONDS = 300  # a spinner or polluter left behind by a killed parent ends by itself


def spinner_cmd(cpu: int) -> list[str]:
    """A spinner with no working set to speak of: a C loop if ``cc`` is there, else Python."""
    exe = Path(f"/tmp/bench-halfrate-spin2-{os.getuid()}")
    if not exe.exists() and shutil.which("cc"):
        src = exe.with_suffix(".c")
        src.write_text(SPIN_C)
        subprocess.run(["cc", "-O1", "-o", str(exe), str(src)], check=True)
    if exe.exists():
        return [str(exe), str(HELPER_SECONDS)]
    code = f"import time\nend = time.monotonic() + {HELPER_SECONDS}\nwhile time.monotonic() < end: pass"
    return [sys.executable, "-c", code]


def start_helpers(mode: str) -> list[subprocess.Popen[bytes]]:
    """``spin``: a SCHED_IDLE spinner on each core; ``pollute``: a 64 MB sweep on CPU 1."""
    procs: list[subprocess.Popen[bytes]] = []
    if mode == "spin":
        for c in sorted(os.sched_getaffinity(0)):

            def idle(c: int = c) -> None:
                os.sched_setaffinity(0, {c})
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

            procs.append(subprocess.Popen(spinner_cmd(c), preexec_fn=idle))
    elif mode == "pollute":
        code = (
            "import os, time\nos.sched_setaffinity(0, {1})\n"
            "a = bytearray(64 << 20); b = bytearray(64 << 20); end = time.monotonic() + "
            f"{HELPER_SECONDS}\n"
            "while time.monotonic() < end:\n    b[:] = a; a[:] = b\n"
        )
        procs.append(subprocess.Popen([sys.executable, "-c", code]))
    return procs


def run_child(rate: float, quantum: float, busy: bool, pin: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(HERE), "--child", str(rate), "--duration", str(args.duration)]
    cmd += ["--settle", str(args.settle), "--quantum", str(quantum), "--pin", str(pin)]
    cmd += ["--busy"] if busy else []
    if args.fifo:
        cmd = ["chrt", "-f", str(args.fifo), *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    if r.returncode:
        raise SystemExit(f"child failed: {r.stderr[-500:]}")
    return json.loads(r.stdout.splitlines()[-1])


def steal_ms() -> float:
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    return int(cpu[8]) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--variants",
        default="plain:2000,plain:4000,spin:2000,spin:4000",
        help="mode:rate[:quantum ms], mode one of plain, spin, pollute, busy",
    )
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--quantum", type=float, default=2.0, help="ms between wake-ups")
    ap.add_argument("--pin", type=int, default=-1, help="pin the paced process to this CPU")
    ap.add_argument("--fifo", type=int, default=0, help="run the paced process at SCHED_FIFO N")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--report", type=Path, nargs="+", help="only print these JSON files' table")
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child, args.duration, args.settle, args.quantum, args.pin, args.busy)
    if args.report:
        return report([r for f in args.report for r in json.loads(f.read_text())])
    variants = []
    for v in args.variants.split(","):
        mode, rate, *q = v.split(":")
        variants.append((v, mode, float(rate), float(q[0]) if q else args.quantum))
    rows: list[dict] = []
    bases: dict[float, dict] = {}
    for rep in range(args.repeat):
        # The loop's own cost (its ticks, no units), once a round per quantum, comes off the CPU.
        for q in sorted({v[3] for v in variants}):
            bases[q] = run_child(0.0, q, False, args.pin, args)
        for name, mode, rate, q in variants if rep % 2 == 0 else variants[::-1]:
            procs = start_helpers(mode)
            try:
                time.sleep(0.3 if procs else 0)
                pin = 0 if mode == "pollute" else args.pin
                st = steal_ms()
                r = run_child(rate, q, mode == "busy", pin, args)
                r["steal_ms"] = steal_ms() - st
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            base = bases[q]
            tick = base["cpu_s"] / max(base["wakes"], 1) * r["wakes"]
            r["cpu_us"] = (r["cpu_s"] - tick) / r["units"] * 1e6 if mode != "busy" else 0.0
            r.update(variant=name, mode=mode, quantum=q, repeat=rep, load1=os.getloadavg()[0])
            r["tick_us"] = base["cpu_s"] / max(base["wakes"], 1) * 1e6
            rows.append(r)
            print(
                f"[{rep}] {name:<16} cpu {r['cpu_us']:6.2f} work {r['work_ns'] / 1e3:6.2f} us/unit "
                f"(first {r['first_ns'] / 1e3:6.2f} other {r['rest_ns'] / 1e3:6.2f})  "
                f"{r['units'] / max(r['wakes'], 1):.1f}/wake, empty tick {r['tick_us']:.0f} us, "
                f"steal {r['steal_ms']:.0f} ms, load {r['load1']:.1f}",
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    report(rows)


def report(rows: list[dict]) -> None:
    """Medians (range) per variant, and each round's ratio to the round's fastest-rate run."""

    def med(xs: list[float]) -> str:
        xs = sorted(xs)
        return f"{statistics.median(xs):.1f} ({xs[0]:.1f}–{xs[-1]:.1f})" if xs else "–"

    names = list(dict.fromkeys(r["variant"] for r in rows))
    print(
        "\n| variant | rounds | CPU µs/unit | work µs/unit | first unit µs | others µs "
        "| work ÷ same mode's top rate, same round |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        rs = [r for r in rows if r["variant"] == name]
        ratios = []
        for r in rs:
            peers = [
                p
                for p in rows
                if p["mode"] == r["mode"] and p["repeat"] == r["repeat"] and p["quantum"] == 2.0
            ]
            top = max(peers, key=lambda p: p["rate"], default=None)
            if top is not None and top is not r:
                ratios.append((r["work_ns"] / top["work_ns"] - 1) * 100)
        cpu = med([r["cpu_us"] for r in rs]) if rs[0]["mode"] != "busy" else "–"
        print(
            f"| {name} | {len(rs)} | {cpu} | {med([r['work_ns'] / 1e3 for r in rs])} "
            f"| {med([r['first_ns'] / 1e3 for r in rs])} | {med([r['rest_ns'] / 1e3 for r in rs])} "
            f"| {med(ratios) + ' %' if ratios else ''} |"
        )


if __name__ == "__main__":
    main()
