"""Where a run's CPU goes in time: start-up, the first seconds, steady state, the end.

``bench_ceiling.py`` reads CPU per request over the whole run (``wait4()``, minus a 1 req/s
run) and in a steady window (3 s after the start to the schedule's end); when the two differ,
this says where: each process of the tree (the coordinator, the workers) is sampled from
``/proc/PID/stat`` every ``--every`` s, and the run is cut at nginx's first request:

- ``startup``: spawn to the first request (imports, the audio bank, workers' spawn, Ready/Go);
- ``first``: the first ``--first`` s of requests (every connection's dial with warm 0);
- ``steady``: from there to the schedule's end;
- ``end``: the graceful stop, the final snapshots, the merge and the reports, with what the
  last sample missed (``wait4()``'s total minus the samples: a process's CPU after its last
  read, at its exit).

Each phase's CPU minus the same phase of the generator's 1 req/s runs (median) is what the
load cost there: a fixed cost cancels, one that grows with the rate or the pool stays.

    python bench/bench_phases.py --rates 4000,8000 --repeat 3 [--json FILE]

Runs interleaved (every generator at every rate, then again), loopback nginx
(bench/nginx_target.py), each bounded by its duration + the 5 s graceful stop.
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
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ceiling import scfleet_config  # noqa: E402
from nginx_target import Nginx, raise_nofile  # noqa: E402

PHASES = ("startup", "first", "steady", "end")
TICK = os.sysconf("SC_CLK_TCK")

#: one read: (seconds since spawn, nginx's requests since spawn, {pid: CPU seconds})
Sample = tuple[float, int, dict[int, float]]


@dataclass
class Phase:
    coordinator_s: float
    workers_s: float
    requests: int

    @property
    def cpu_s(self) -> float:
        return self.coordinator_s + self.workers_s


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/PID/task/TID/children``)."""
    out = [pid]
    for p in out:
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    out += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def cpu_s(pid: int) -> float | None:
    """user + system CPU of one process so far (``/proc/PID/stat``); None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _at(samples: list[Sample], t: float) -> Sample:
    """The last sample at or before ``t`` (the first if none)."""
    best = samples[0]
    for s in samples:
        if s[0] > t:
            break
        best = s
    return best


def split(
    samples: list[Sample], root: int, duration: float, first_s: float, total_s: float
) -> dict[str, Phase] | None:
    """The run's CPU by phase (:data:`PHASES`), cut at the first sample with a request served
    (None: no request). A process's CPU is its last read's (carried forward after it exits);
    what no sample saw (``total_s``, the tree's ``wait4()`` CPU, minus the last sample's sum)
    goes to the workers' end, where it is spent (their exit), or the coordinator's if the run
    has no other process."""
    t0 = next((t for t, n, _ in samples if n > 0), None)
    if t0 is None:
        return None
    cuts = (0.0, t0, t0 + first_s, t0 + duration, samples[-1][0] + 1.0)
    out: dict[str, Phase] = {}
    for name, a, b in zip(PHASES, cuts, cuts[1:], strict=False):
        sa, sb = _at(samples, a), _at(samples, b)
        if a == 0.0:
            sa = (0.0, 0, {})
        coord = sb[2].get(root, 0.0) - sa[2].get(root, 0.0)
        work = sum(v - sa[2].get(p, 0.0) for p, v in sb[2].items() if p != root)
        out[name] = Phase(coord, work, sb[1] - sa[1])
    unseen = max(total_s - sum(samples[-1][2].values()), 0.0)
    end = out["end"]
    if len(samples[-1][2]) > 1:
        end.workers_s += unseen
    else:
        end.coordinator_s += unseen
    return out


def run_once(
    scfleet: str, gen: str, rate: float, args: argparse.Namespace, nginx: Nginx, tmp: Path
) -> dict[str, object]:
    cfg = tmp / f"sc-{gen}-{rate:g}.toml"
    cfg.write_text(scfleet_config(rate, args.duration, args.body, args.warm))
    out = tmp / "out"
    cmd = [scfleet, "run", str(cfg), "--target", nginx.url, "--out", str(out), "--quiet"]
    cmd += ["--workers", "1" if gen == "w1" else "auto"]
    n0, t0 = nginx.served(), time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=raise_nofile
    )
    samples: list[Sample] = []
    last: dict[int, float] = {}
    deadline = t0 + args.duration + 60
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            raise SystemExit(f"{gen} at {rate:g}/s did not finish in time")
        for p in tree(proc.pid):
            c = cpu_s(p)
            if c is not None:
                last[p] = c
        samples.append((time.perf_counter() - t0, nginx.served() - n0, dict(last)))
        time.sleep(args.every)
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if code not in (0, 99):
        raise SystemExit(f"{gen} at {rate:g}/s exited {code}: {err.strip()[-400:]}")
    doc = json.loads((out / "summary.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    total = ru.ru_utime + ru.ru_stime
    phases = split(samples, proc.pid, args.duration, args.first, total)
    if phases is None:
        raise SystemExit(f"{gen} at {rate:g}/s: nginx saw no request")
    return {
        "gen": gen,
        "rate": rate,
        "requests": int(doc["metrics"]["http_reqs"]["count"]),
        "cpu_s": total,
        "wall_s": time.perf_counter() - t0,
        "phases": {k: asdict(v) for k, v in phases.items()},
    }


def report(runs: list[dict[str, object]]) -> list[str]:
    """Per rate and generator: whole-run µs a request (minus the 1 req/s median), each phase's
    extra CPU seconds over the 1 req/s runs' same phase, and µs a request in ``first`` and
    ``steady``; medians with ranges."""

    def cpu(r: dict[str, object], ph: str) -> float:
        p = r["phases"][ph]  # type: ignore[index]
        return float(p["coordinator_s"] + p["workers_s"])

    def fmt(xs: list[float], f: str) -> str:
        return f"{statistics.median(xs):{f}} ({min(xs):{f}}–{max(xs):{f}})"

    lines = []
    gens = sorted({str(r["gen"]) for r in runs}, key=("w1", "auto").index)
    for rate in sorted({float(r["rate"]) for r in runs if r["rate"] != 1}):  # type: ignore[arg-type]
        for gen in gens:
            base = [r for r in runs if r["gen"] == gen and r["rate"] == 1]
            load = [r for r in runs if r["gen"] == gen and r["rate"] == rate]
            if not base or not load:
                continue
            b_cpu = statistics.median(float(r["cpu_s"]) for r in base)  # type: ignore[arg-type]
            b_req = statistics.median(int(r["requests"]) for r in base)  # type: ignore[call-overload]
            whole = [
                (float(r["cpu_s"]) - b_cpu) / (int(r["requests"]) - b_req) * 1e6  # type: ignore[arg-type, call-overload]
                for r in load
            ]
            parts = [f"whole {fmt(whole, '.1f')} µs"]
            for ph in PHASES:
                b = statistics.median(cpu(r, ph) for r in base)
                extra = [cpu(r, ph) - b for r in load]
                parts.append(f"{ph} {fmt(extra, '+.2f')} s")
                if ph in ("first", "steady"):
                    us = [
                        (cpu(r, ph) - b) / max(r["phases"][ph]["requests"], 1) * 1e6  # type: ignore[index]
                        for r in load
                    ]
                    parts[-1] += f" = {fmt(us, '.1f')} µs"
            lines.append(f"{rate:>6g}/s {gen:<4} " + "; ".join(parts))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="4000,8000", help="rates besides the 1 req/s baseline")
    ap.add_argument("--generators", default="w1,auto", help="w1 and/or auto")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of schedule")
    ap.add_argument("--body", type=int, default=32000)
    ap.add_argument("--warm", default="0", help="scfleet's [run] warm_connections")
    ap.add_argument("--first", type=float, default=3.0, help="seconds of the 'first' phase")
    ap.add_argument("--every", type=float, default=0.02, help="seconds between /proc reads")
    ap.add_argument("--json", type=Path, help="write every run's phases here")
    args = ap.parse_args()
    scfleet = shutil.which("scfleet") or str(Path(sys.executable).parent / "scfleet")
    rates = [1.0, *(float(r) for r in args.rates.split(","))]
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp_name, Nginx() as nginx:
        for _ in range(args.repeat):
            for rate in rates:
                for gen in args.generators.split(","):
                    r = run_once(scfleet, gen, rate, args, nginx, Path(tmp_name))
                    runs.append(r)
                    ph = r["phases"]
                    print(
                        f"  {gen:<4} {rate:>6g}/s: {r['requests']} requests, cpu "
                        f"{r['cpu_s']:.2f} s, "
                        + ", ".join(
                            f"{k} {v['coordinator_s']:.2f}+{v['workers_s']:.2f}"  # type: ignore[index]
                            for k, v in ph.items()  # type: ignore[attr-defined]
                        ),
                        flush=True,
                    )
    print(f"load {os.getloadavg()[0]:.2f}; phases' CPU minus the 1 req/s runs' (median, range):")
    for line in report(runs):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
