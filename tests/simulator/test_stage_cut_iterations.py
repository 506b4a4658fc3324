"""Iterations a graceful stop cuts count against the stage they started in: a stage where half
the iterations never finished must not read "held".

Real server on 127.0.0.1 answering every other upload after 10 s; 10/s for 2 s,
``graceful_stop = "1s"``: ~10 answered in ~1 ms, ~10 cut. As in k6 the cut requests stay out
of every threshold (``p(95)<1000`` passes, exit 0), but the stage table's verdict is the
product's own "where does it break" judgement and must name them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from half_hanging import CUT_RUN_TOML, every_other_hangs

from scfleet import api


@pytest.fixture
def hanging_server() -> Iterator[str]:
    with every_other_hangs() as url:
        yield url


def _stages(run: Path) -> Any:
    return json.loads((run / "summary.json").read_text())["scfleet"]["stages"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_stage_whose_iterations_were_cut_does_not_read_held(
    tmp_path: Path, hanging_server: str, workers: int
) -> None:
    from simulator.report.cli import build_reports

    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text(CUT_RUN_TOML)
    run = tmp_path / "run"
    t0 = time.monotonic()
    outcome = api.run(api.load(cfg_file), target=hanging_server, out=run, workers=workers)
    assert time.monotonic() - t0 < 30
    assert outcome.exit_code == 0  # k6's semantics: the cut requests are in no threshold
    summary = json.loads((run / "summary.json").read_text())
    cut = summary["scfleet"]["metrics"]["interrupted_iterations"]["count"]
    assert cut >= 5  # half of 20, less a few the machine's lag kept from starting on time

    def check(stages: Any) -> None:
        verdict = stages["scenarios"]["up"]
        assert verdict["verdict"] != "held", verdict
        assert f"{cut} of " in verdict["reason"], verdict
        (row,) = stages["rows"]
        assert (row.get("cut"), row["thresholds_ok"]) == (cut, False), row

    check(_stages(run))
    text = (run / "summary.txt").read_text().split("STAGES")[1]
    assert f"{cut} of " in text and "the limit is higher" not in text, text

    # `scfleet report` re-rendering the folder judges the same
    build_reports(run)
    check(_stages(run))

    # a folder from before the count (no "interrupted" in its ticks) still renders, as 0
    timeline = json.loads((run / "timeline.json").read_text())
    for p in timeline:
        for s in p["scenarios"].values():
            s.pop("interrupted", None)
    (run / "timeline.json").write_text(json.dumps(timeline))
    build_reports(run)
    (row,) = _stages(run)["rows"]
    assert row["cut"] == 0 and row["thresholds_ok"] is True, row
