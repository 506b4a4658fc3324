"""bench/bench_pyspy.py's table: the socket write is found by the fast client's source (not a
line number that drifts), and samples outside the event loop (imports, setup) are left out."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_pyspy", BENCH / "bench_pyspy.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_write_line_loop_and_setup_are_told_apart() -> None:
    mod = _load()
    writes = mod.write_lines()
    assert writes, "fast.py no longer writes with tr.write/tr.writelines: update the bench"
    (write,) = sorted(writes)[:1]
    loop = 'process 1:"scfleet";main (scfleet/cli.py:50);Runner.run (asyncio/runners.py:118)'
    raw = [
        f"{loop};fire (simulator/executors/arrival.py:134);{write} 7",
        f"{loop};fire (simulator/executors/arrival.py:134);_Exchange.begin "
        "(simulator/http/fast.py:1) 2",
        f"{loop} 3",
        f"{loop};Behaviour.record (simulator/run/devices.py:170) 1",
        'process 1:"scfleet";main (scfleet/cli.py:50);<module> (simulator/config/model.py:12) 50',
    ]
    areas, funcs, total = mod.table(raw, writes)
    assert total == 13  # the import's 50 samples are not the loop's
    assert areas[mod.WRITE] == 7
    assert areas["fast HTTP client (Python): head, parse, exchange"] == 2
    assert areas[mod.LOOP_C] == 3
    assert areas["device iteration: start, done, record"] == 1
    assert funcs["_Exchange.begin (simulator/http/fast.py)"] == 9
