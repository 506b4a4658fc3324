"""``pp`` (percentage points) is for rates: the gate refuses it on a gauge.

Found with ``scfleet compare A B --fail-on "vus.value+1pp"``: accepted, and a gauge of 10
against 12 judged against a limit of 10.01 (one percentage point of a number that is no share).
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import pytest

from scfleet.cli import main
from simulator.report import gate

DATA = pathlib.Path(__file__).parent / "data"


def _summary(vus: int) -> dict[str, Any]:
    return {
        "metrics": {
            "vus": {"value": vus, "min": 0, "max": vus},
            "queue_depth": {"value": vus, "min": 0, "max": vus},
            "http_req_failed": {"passes": 1, "fails": 9, "value": 0.1},
        }
    }


@pytest.mark.parametrize("spec", ["vus.value+1pp", "vus_max{scenario:up}.value-2pp"])
def test_a_builtin_gauge_in_pp_is_a_usage_error(spec: str) -> None:
    with pytest.raises(ValueError, match=r"is a gauge.*'pp'") as err:
        gate.parse_spec(spec)
    assert repr(spec) in str(err.value) and "\n" not in str(err.value)


def test_a_custom_gauge_in_pp_is_refused_when_the_summaries_show_it() -> None:
    rules = gate.parse_spec("queue_depth.value+1pp")
    with pytest.raises(ValueError, match=r"'queue_depth.value\+1pp': queue_depth is a gauge"):
        gate.check_units(rules, _summary(10), _summary(12))
    gate.check_units(
        gate.parse_spec("error_rate+1pp,queue_depth.value+5%"), _summary(1), _summary(2)
    )


def test_compare_says_it_in_one_line(tmp_path: pathlib.Path, capsys: Any) -> None:
    runs = []
    for name, depth in (("a", 10), ("b", 12)):
        d = shutil.copytree(DATA / "run_format1", tmp_path / name)
        doc = json.loads((d / "summary.json").read_text())
        doc["metrics"]["queue_depth"] = {"value": depth, "min": 0, "max": depth}
        (d / "summary.json").write_text(json.dumps(doc))
        runs.append(str(d))
    code = main(["compare", *runs, "--fail-on", "queue_depth.value+1pp"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "queue_depth is a gauge" in err, err
