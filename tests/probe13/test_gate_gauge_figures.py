"""The gate shows a gauge's figures as the numbers they are.

Found with ``scfleet compare A B --fail-on "vus_max.value+0%"``: "1000.00% → 1000.00%" for a
``vus_max`` of 10 (a gauge's value read as a rate's share), and ``vus.max`` in milliseconds
("1.0 ms → 1.0 ms"), in the line a CI log keeps.
"""

from __future__ import annotations

from typing import Any

from simulator.report import gate


def _summary(vus_max: int) -> dict[str, Any]:
    return {
        "metrics": {
            "vus_max": {"value": vus_max, "min": vus_max, "max": vus_max},
            "vus": {"value": 0, "min": 0, "max": 1},
            "checks": {"passes": 9, "fails": 1, "value": 0.9},
        }
    }


def test_gauge_figures_are_plain_numbers_and_rates_stay_shares() -> None:
    out = gate.judge(
        gate.parse_spec("vus_max.value+0%,vus.max+0%,checks-1pp"), _summary(10), _summary(12)
    )
    text = gate.render(out)
    assert "vus_max.value+0%  10 → 12 (+20.0%; limit 10)" in text, text
    assert "vus.max+0%        1 → 1 (+0.0%; limit 1)" in text, text
    assert "90.00% → 90.00%" in text, text
