"""A threshold expression is read as k6 1.1.0 reads it (``metrics/thresholds_parser.go``):
the first operator of ``<= < >= > === == !=`` found splits it, each side trimmed; the left is
one of ``value count rate avg min med max p`` or ``p(`` + a number + ``)`` taken verbatim
(no spaces inside), the right a number as Go's ``strconv.ParseFloat`` reads one.

Found by giving k6 1.1.0 and scfleet the same expressions against one loopback server:
k6 refused ``p( 95 )<2000`` and ``p(95 )<2000`` (exit 104, "malformed percentile value")
where scfleet ran them; k6 ran ``avg<1_000``, ``avg<Inf``, ``avg<infinity``, ``avg<NaN``,
``avg<0x1p4``, ``p(1_0)<2000`` and a bare ``p<5000`` (k6's ``p(0)``) where scfleet refused
each at load (104). Left different by choice: a percentile outside 0..100 (or NaN), which
k6 accepts and then panics on (exit 109) once the trend holds two samples; scfleet refuses it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from k6_side import needs_k6, run_k6

from simulator.metrics.thresholds import parse_expression

#: (expression, aggregation, op, value): k6 runs each
K6_RUNS = [
    ("avg<1_000", "avg", "<", 1000.0),
    ("avg<1_000_000", "avg", "<", 1e6),
    ("avg<Inf", "avg", "<", math.inf),
    ("avg<infinity", "avg", "<", math.inf),
    ("avg>-Inf", "avg", ">", -math.inf),
    ("avg<0x1p4", "avg", "<", 16.0),
    ("avg<0x1.8P+1", "avg", "<", 3.0),
    ("p(1_0)<2000", "p(10)", "<", 2000.0),
    ("p(0x1p4)<2000", "p(16)", "<", 2000.0),
    ("p<5000", "p(0)", "<", 5000.0),
    (" p(95) <\t2000 ", "p(95)", "<", 2000.0),
    ("p(95)<=2000", "p(95)", "<=", 2000.0),
    ("avg< 5", "avg", "<", 5.0),
]
#: k6 refuses each at load (104)
K6_REFUSES = [
    "p( 95 )<2000",
    "p(95 )<2000",
    "p( 95)<2000",
    "p (95)<2000",
    "avg<1__0",
    "avg<1_e3",
    "avg<_1",
    "avg<1_",
    "avg<0x10",
    "avg<1e400",
    "avg<+NaN",
    "avg<infin",
    "p(0x10)<2000",
    "avg=0",
    "avg<>0",
    "avg< =2000",
    "p(95)=<2000",
    "avg<",
    "<5",
    "avg<=",
    "p(95)<2000<3000",
    "avg < 2000 ms",
]


@pytest.mark.parametrize(("text", "agg", "op", "value"), K6_RUNS)
def test_what_k6_runs_is_read_as_k6_reads_it(text: str, agg: str, op: str, value: float) -> None:
    e = parse_expression(text)
    assert (e.aggregation, e.op, e.value) == (agg, op, value)


def test_nan_is_read_and_never_holds() -> None:
    e = parse_expression("avg<NaN")
    assert math.isnan(e.value) and not e.holds(1.0)


@pytest.mark.parametrize("text", K6_REFUSES)
def test_what_k6_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad threshold expression"):
        parse_expression(text)


@pytest.mark.parametrize("text", ["p(150)<1", "p(-1)<1", "p(NaN)<1", "p(Inf)<1"])
def test_a_percentile_k6_would_panic_on_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="percentile must be 0..100"):
        parse_expression(text)


@pytest.mark.slow
@needs_k6
def test_k6_itself_runs_and_refuses_the_same(tmp_path: Path) -> None:
    """k6 on the same expressions: the first list loads (0 or 99: judged), the second is
    refused (104). No request is made: iteration_duration is the trend."""
    cases = [(t, False) for t, *_ in K6_RUNS] + [("avg<NaN", False)]
    cases += [(t, True) for t in K6_REFUSES]
    for text, refused in cases:
        script = (
            "export const options = { vus: 1, iterations: 1, "
            f"thresholds: {{ iteration_duration: [{text!r}] }} }};\n"
            "export default function () {}\n"
        )
        code, _ = run_k6(script, tmp_path)
        assert code in ((104,) if refused else (0, 99)), (text, code)
