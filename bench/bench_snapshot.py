"""CPU per worker snapshot, in-process: what coordinating workers costs per second, apart from
the load itself (issue 12, `auto` CPU per request).

Replays ``--ticks`` seconds of ``--workers`` workers at ``--rate`` requests/s each (lognormal
phases, as a 32 KB upload against nginx gives), through the code a run uses: each worker's
recorders are folded, its registry deltas taken and its snapshot pickled; the coordinator
unpickles each snapshot, merges it into its registry and intervals, and writes the tick line
of ``run.ndjson`` for the merged registry. ``time.process_time`` around each piece; the first
5 ticks are left out; median and range over ticks. No network, no subprocess.

    python bench/bench_snapshot.py [--ticks 50] [--rate 2000] [--workers 2]

To compare two versions, run it from each checkout (``PYTHONPATH=that/checkout``), alternately.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from simulator.metrics import IntervalStats, Registry
from simulator.metrics.recorders import IterationRecorder, RequestRecorder, RequestSample
from simulator.metrics.registry import tags_of
from simulator.report.output import RunStream, encoded_tick
from simulator.run.workers import DeltaTracker, ScenarioTick, Snapshot

SCENARIO = tags_of((("scenario", "s"), ("kind", "upload")))
BASE = tags_of((*SCENARIO, ("endpoint", "/a"), ("method", "POST")))


class Worker:
    def __init__(self) -> None:
        self.reg = Registry()
        self.iv = IntervalStats()
        self.requests = RequestRecorder(self.reg, BASE, self.iv, SCENARIO)
        lag = tags_of((("scenario", "s"),))
        self.iterations = IterationRecorder(self.reg, SCENARIO, lag, self.iv)
        self.tracker = DeltaTracker(self.reg)

    def load(self, rng: np.random.Generator, rate: int) -> None:
        dur = rng.lognormal(np.log(1500), 0.6, rate).astype(int).tolist()
        lags = rng.integers(20, 3000, rate).tolist()
        for i, d in enumerate(dur):
            self.requests.record(
                RequestSample(
                    200, False, d, 0, 40 + i % 60, d - 200, 150 + i % 90, d + 30, 32000, 200
                )
            )
            self.iterations.record(d + 50, lags[i])


#: warm-up ticks left out of every figure
SKIP = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=50)
    ap.add_argument("--rate", type=int, default=2000, help="requests per second per worker")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if args.ticks <= SKIP:  # the warm-up ticks are left out: one must remain
        sys.exit(f"bench_snapshot.py: --ticks must be at least {SKIP + 1}, not {args.ticks}")
    rng = np.random.default_rng(1)
    workers = [Worker() for _ in range(args.workers)]
    coord, live = Registry(), IntervalStats()
    stream = RunStream(Path(tempfile.mkdtemp(prefix="bench-snapshot-")), {})
    pt = time.process_time
    t: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        t.setdefault(key, []).append(value)

    for tick in range(args.ticks):
        msgs = []
        for w in workers:
            w.load(rng, args.rate)
            a = pt()
            w.reg.flush()
            b = pt()
            snap = Snapshot(
                0, tick + 1, (ScenarioTick("s", w.iv.take(), 1, 1, 1),), w.tracker.take()
            )
            c = pt()
            data = pickle.dumps(snap, protocol=pickle.HIGHEST_PROTOCOL)
            d = pt()
            add("worker: fold", b - a)
            add("worker: take", c - b)
            add("worker: pickle", d - c)
            add("worker: all", d - a)
            add("snapshot KB", len(data) / 1000)
            msgs.append(data)
        coordinator = 0.0
        for data in msgs:
            a = pt()
            got = pickle.loads(data)
            b = pt()
            for delta in got.series:
                if delta.metric not in coord.types:
                    coord.define(delta.metric, delta.mtype, delta.contains)
                coord.get(delta.metric, delta.tags).merge(delta.value)
            for sc in got.scenarios:
                live.hist.merge(sc.stats.hist)
            c = pt()
            add("coordinator: unpickle", b - a)
            add("coordinator: merge", c - b)
            coordinator += c - a
        a = pt()
        line = {"type": "tick", "wall": 0.0, "point": {}, "registry": stream._delta(coord)}
        encoded_tick(line)  # as RunStream writes it
        live.take()
        b = pt()
        add("coordinator: tick line (per tick)", b - a)
        add("coordinator: all (per tick)", coordinator + b - a)
    skip = SKIP
    print(f"{args.workers} workers x {args.rate}/s, {args.ticks} ticks (first {skip} left out)")
    for key, values in t.items():
        per_tick = "per tick" in key
        v = values[skip if per_tick else skip * args.workers :]
        unit, f = ("KB", 1.0) if key.endswith("KB") else ("ms", 1e3)
        print(
            f"  {key:36s} median {statistics.median(v) * f:8.2f} {unit} "
            f"({min(v) * f:.2f}-{max(v) * f:.2f})"
        )


if __name__ == "__main__":
    main()
