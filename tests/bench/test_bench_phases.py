"""bench/bench_phases.py's split: a run's CPU is cut at nginx's first request, each process's
CPU is carried past its exit, and what no sample saw (the exit) goes to the end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_phases", BENCH / "bench_phases.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up
    spec.loader.exec_module(mod)
    return mod


def test_phases_cut_at_the_first_request_and_the_exit_goes_to_the_end() -> None:
    mod = _load()
    root, w = 10, 11
    samples = [
        (0.1, 0, {root: 0.3}),
        (0.5, 0, {root: 0.4, w: 0.3}),  # the worker appears: its start-up from 0
        (1.0, 5, {root: 0.4, w: 0.5}),  # first request served
        (2.0, 100, {root: 0.45, w: 1.0}),
        (4.0, 300, {root: 0.5, w: 2.0}),
        (5.2, 400, {root: 0.6, w: 2.0}),  # the worker is gone: its last read carried
    ]
    out = mod.split(samples, root, duration=3.0, first_s=1.0, total_s=2.9)
    assert out is not None
    s, f, st, e = (out[k] for k in mod.PHASES)
    assert (s.coordinator_s, s.workers_s, s.requests) == (0.4, 0.5, 5)
    assert (round(f.coordinator_s, 9), f.workers_s, f.requests) == (0.05, 0.5, 95)
    assert (round(st.coordinator_s, 9), st.workers_s, st.requests) == (0.05, 1.0, 200)
    # the end: the coordinator's 0.1 seen, and 2.9 - 2.6 seen in all = 0.3 at the workers' exit
    assert round(e.coordinator_s, 9) == 0.1 and round(e.workers_s, 9) == 0.3
    assert round(sum(p.cpu_s for p in out.values()), 9) == 2.9


def test_no_request_no_phases() -> None:
    mod = _load()
    assert mod.split([(0.1, 0, {1: 0.2})], 1, 3.0, 1.0, 0.2) is None
