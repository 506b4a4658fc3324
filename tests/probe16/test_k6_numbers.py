"""A threshold's number is read as k6 reads one (Go's ``strconv.ParseFloat``): ``rate<.01``,
``p(95)<5.``, ``avg<+5``, ``avg<1e+3``, ``p(.5)``, ``p(99.)``.

Found by giving k6 1.1.0 and scfleet the same expressions: k6 ran each of these (exit 0 on a
run that met them), scfleet refused every one at load with "bad threshold expression" (exit
104). Unchanged: what both refuse (``avg=<5``, ``p(95)<<1``, ``avg<5 ms``, ``avg!==0``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from k6_side import needs_k6, run_k6

from simulator.metrics.thresholds import parse_expression

K6_READS = [
    ("rate<.01", "rate", 0.01),
    ("p(95)<5.", "p(95)", 5.0),
    ("avg<+5", "avg", 5.0),
    ("avg<1e+3", "avg", 1000.0),
    ("min>-1.5E-3", "min", -0.0015),
    ("p(.5)<1", "p(.5)", 1.0),
    ("p(99.)<=1", "p(99.)", 1.0),
]
BOTH_REFUSE = ["avg=<5", "p(95)<<1", "avg<5 ms", "avg!==0", "avg<.", "avg<+", "p()<1", "AVG<1"]


@pytest.mark.parametrize(("text", "agg", "value"), K6_READS)
def test_numbers_k6_reads_are_read(text: str, agg: str, value: float) -> None:
    e = parse_expression(text)
    assert (e.aggregation, e.value) == (agg, pytest.approx(value))


@pytest.mark.parametrize("text", BOTH_REFUSE)
def test_what_k6_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad threshold expression"):
        parse_expression(text)


@pytest.mark.slow
@needs_k6
def test_k6_reads_them_and_refuses_the_rest(tmp_path: Path) -> None:
    """k6 itself: the expressions above load (0 or 99: judged), the others are refused (104)."""
    for text, want in [(t, 0) for t, _, _ in K6_READS] + [(t, 104) for t in BOTH_REFUSE]:
        metric = "checks" if text.startswith("rate") else "iteration_duration"
        script = (
            "export const options = { vus: 1, iterations: 1, "
            f"thresholds: {{ {metric!r}: [{text!r}] }} }};\n"
            "export default function () {}\n"
        )
        code, _ = run_k6(script, tmp_path)
        assert code in ((0, 99) if want == 0 else (104,)), (text, code)
