"""Iterations a graceful stop cuts are in no figure (as in k6): the summary must say so.

Found with a loopback server that answered every other upload after 10 s, 10/s for 3 s,
``graceful_stop = "1s"``: 15 answered in ~1 ms, 15 cut. ``p(95)<1000`` and
``http_req_failed rate<0.01`` passed, the stage table read "held — the limit is higher", exit
0; the only trace was ``interrupted_iterations 15`` among the metrics, no note.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from half_hanging import CUT_RUN_TOML, every_other_hangs

from scfleet import api


@pytest.fixture
def hanging_server() -> Iterator[str]:
    with every_other_hangs() as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_iterations_cut_by_the_graceful_stop_are_noted(
    tmp_path: Path, hanging_server: str, workers: int
) -> None:
    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text(CUT_RUN_TOML)
    t0 = time.monotonic()
    outcome = api.run(
        api.load(cfg_file), target=hanging_server, out=tmp_path / "run", workers=workers
    )
    assert time.monotonic() - t0 < 30
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    cut = summary["scfleet"]["metrics"]["interrupted_iterations"]["count"]
    assert cut >= 5  # half of 20, less a few the machine's lag kept from starting on time
    notes = [n for n in summary["scfleet"]["notes"] if "graceful stop ended" in n]
    assert len(notes) == 1 and notes[0].startswith(f"up: {cut:,} iterations"), summary["scfleet"]
    assert "graceful stop ended" in (tmp_path / "run" / "summary.txt").read_text()
    assert outcome.exit_code == 0  # k6's semantics: the cut requests are in no threshold
