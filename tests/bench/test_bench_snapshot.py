"""bench/bench_snapshot.py: too few ticks for its warm-up is a one-line error, not a traceback
("no median for empty data" with --ticks 5, the 5 warm-up ticks left out)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_snapshot.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_too_few_ticks_is_one_line_naming_the_flag_and_the_least() -> None:
    ticks = "5"
    res = _bench("--ticks", ticks)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"bench_snapshot.py: --ticks must be at least 6, not {ticks}"
    ]
    assert res.stdout == ""


@pytest.mark.slow  # a second of the bench itself; the fast tier keeps to the error
def test_the_fewest_ticks_it_takes_give_figures() -> None:
    res = _bench("--ticks", "6", "--rate", "50", "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert "6 ticks (first 5 left out)" in res.stdout
    assert "worker: all" in res.stdout and "median" in res.stdout
