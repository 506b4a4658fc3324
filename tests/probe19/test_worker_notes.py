"""A note that counts something (a Python device's errors, duplicates, conflicts) says the
run's count, not one worker's.

Found by hand (probe19): a device raising in every iteration, 10 iterations over
``--workers 2``: ``iteration_errors`` 10 and the note "5 × D.iteration raised ..." — each
worker's note said 5 and the coordinator kept one copy of the equal lines (unequal counts
gave one line per worker instead)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from raw_http import counting

from scfleet import api
from simulator.metrics.registry import Counter

DEVICE = """
from simulator.userdevice import Device


class D(Device):
    async def iteration(self):
        raise RuntimeError("every device")
"""

SCENARIO = """
[scenarios.py]
executor = "constant-arrival-rate"
rate = 12
duration = "1s"
pre_allocated_devices = 4
[scenarios.py.device]
kind = "python:dev.py:D"
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_workers_notes_count_the_whole_run(tmp_path: Path) -> None:
    (tmp_path / "dev.py").write_text(DEVICE)
    (tmp_path / "run.toml").write_text(SCENARIO)
    cfg = api.load(tmp_path / "run.toml")
    with counting() as (url, _handler):
        outcome = api.run(cfg, target=url, out=tmp_path / "out", workers=2)
    merged = outcome.result.registry.merged("iteration_errors")
    assert isinstance(merged, Counter), merged
    errors = int(merged.value)
    assert errors >= 10, errors
    counted: dict[str, int] = {}
    for note in outcome.result.notes:
        m = re.fullmatch(r"scenario py: (\d+) × D\.iteration raised (\w+): .*", note)
        if m:
            assert m[2] not in counted, (
                f"one note per error, not per worker: {outcome.result.notes}"
            )
            counted[m[2]] = int(m[1])
    assert sum(counted.values()) == errors, outcome.result.notes


def test_counts_of_several_processes_are_summed_per_message() -> None:
    from simulator.run.devices import NoteCount, count_notes

    one = [NoteCount("s", "error", 3, "a"), NoteCount("s", "duplicates", 2, first="esp32-7")]
    two = [
        NoteCount("s", "error", 4, "b"),
        NoteCount("s", "error", 1, "a"),
        NoteCount("s", "other", 5),
        NoteCount("s", "duplicates", 1, first="esp32-2"),
    ]
    notes = count_notes(one + two)
    assert notes[:3] == [
        "scenario s: 4 × a",  # 3 + 1; a tie keeps the first seen first
        "scenario s: 4 × b",
        "scenario s: 5 more errors of other kinds",
    ]
    assert len(notes) == 4
    assert notes[3].startswith(
        "scenario s: the server answered 3 uploads as duplicates (first from esp32-7)"
    )
