"""The regression gate cannot vouch for a run whose graceful stop cut iterations.

Found with ``scfleet compare runs/base runs/new --fail-on 'p(95)+50%,error_rate+0.5pp'``
where NEW ran against a server that answered every other upload only after 20 s
(5/s for 2 s, ``graceful_stop = "1s"``): 5 of 10 iterations cut, their requests in no figure,
so NEW read error_rate 0.00% and p(95) 2 ms: "gate: passed 2 of 2", exit 0 — a CI gate that
waved through a server ignoring half its uploads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from half_hanging import CUT_RUN_TOML, every_other_hangs

from scfleet import api, cli
from simulator.report import gate


def _summary(cut: int = 0, done: int = 20) -> dict[str, Any]:
    metrics: dict[str, Any] = {"interrupted_iterations": {"count": cut, "rate": 0.0}}
    return {
        "metrics": {
            "http_req_duration": {"p(95)": 2.0},
            "http_req_failed": {"value": 0.0},
            "iterations": {"count": done},
        },
        "scfleet": {"state": {"interrupted": False, "abortedBy": None}, "metrics": metrics},
    }


def test_a_run_with_cut_iterations_fails_the_gate() -> None:
    rules = gate.parse_spec("p(95)+50%,error_rate+0.5pp")
    assert all(o.ok for o in gate.judge(rules, _summary(), _summary()))
    out = gate.judge(rules, _summary(), _summary(cut=5, done=5))
    assert [o.ok for o in out] == [True, True, False], gate.render(out)
    text = gate.render(out)
    assert "NEW run was cut short by its graceful stop (5 of 10 iterations" in text, text
    assert "gate: FAILED 1 of 3" in text


@pytest.fixture
def hanging_server() -> Iterator[str]:
    with every_other_hangs() as url:
        yield url


@pytest.mark.slow
def test_compare_against_a_run_whose_stop_cut_half_exits_99(
    tmp_path: Path, hanging_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text(CUT_RUN_TOML)
    base = tmp_path / "base"  # the same run against the embedded server: nothing cut
    assert api.run(api.load(cfg_file), out=base, workers=1).exit_code == 0
    new = tmp_path / "new"
    assert api.run(api.load(cfg_file), target=hanging_server, out=new, workers=1).exit_code == 0
    cut = json.loads((new / "summary.json").read_text())["scfleet"]["metrics"]
    assert cut["interrupted_iterations"]["count"] >= 5
    code = cli.main(["compare", str(base), str(new), "--fail-on", "error_rate+0.5pp"])
    assert code == 99
    out = capsys.readouterr().out
    assert "FAIL  whole runs" in out and "NEW run was cut short by its graceful stop" in out, out
