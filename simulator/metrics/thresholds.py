"""k6 threshold expressions: parsing, and evaluation against aggregated metrics.

A threshold is ``<aggregation> <op> <value>`` (``p(95)<2000``, ``rate<0.01``, ``count>0``),
attached to a metric that may carry a tag filter (``http_req_duration{scenario:iot_upload}``).
Trend values are in milliseconds, as in k6.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from scfleet_core.errors import ConfigError

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
}
#: k6's operators in the order its scanner tries them (``operatorTokens``): the first found
#: anywhere in the expression with something after it splits it.
_OP_ORDER = ("<=", "<", ">=", ">", "===", "==", "!=")
#: k6's aggregation keywords (``aggregationMethodTokens``); a bare ``p`` is its ``p(0)``.
_METHODS = frozenset({"value", "count", "rate", "avg", "min", "med", "max", "p"})
#: Go's ``strconv.ParseFloat`` syntax: decimal, or hex with a ``p`` exponent; ``_`` between
#: digits (checked by :func:`_underscores_ok`); ``inf``/``infinity`` (signed) and ``nan``.
_GO_DEC = re.compile(r"[+-]?([0-9_]*(?:\.[0-9_]*)?)(?:[eE][+-]?[0-9][0-9_]*)?")
_GO_HEX = re.compile(r"[+-]?0[xX]([0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?)[pP][+-]?[0-9][0-9_]*")
_GO_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)
_METRIC = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\{(?P<tags>[^{}]*)\})?$")

#: Which aggregations each metric type supports (k6's ``supportedAggregationMethods``).
AGGREGATIONS_BY_TYPE = {
    "trend": ("avg", "min", "max", "med", "p(N)"),
    "rate": ("rate",),
    "counter": ("count", "rate"),
    "gauge": ("value",),
}


#: Metric types whose empty sink k6 evaluates as 0 (``TrendSink``/``GaugeSink`` with no
#: sample report 0); an empty counter's count is 0 already, an empty rate has no value.
EMPTY_AS_ZERO = frozenset({"trend", "gauge"})


@dataclass(frozen=True)
class ThresholdExpr:
    """One parsed expression; ``aggregation`` is normalised (``p(95)``, ``avg`` …)."""

    source: str
    aggregation: str
    op: str
    value: float

    @property
    def percentile(self) -> float | None:
        if self.aggregation.startswith("p("):
            return float(self.aggregation[2:-1])
        return None

    def holds(self, observed: float) -> bool:
        return _OPS[self.op](observed, self.value)


@dataclass(frozen=True)
class Threshold:
    """A metric (with optional tag filter) and the expressions it must satisfy."""

    metric_key: str
    metric: str
    tags: tuple[tuple[str, str], ...]
    expr: ThresholdExpr
    abort_on_fail: bool = False
    delay_abort_eval: float = 0.0

    @property
    def name(self) -> str:
        """``metric{tags}: expression``: how a run names it (the abort, the plugin's lines)."""
        return f"{self.metric_key}: {self.expr.source}"


@dataclass
class ThresholdResult:
    threshold: Threshold
    observed: float | None
    ok: bool
    note: str = ""


class MetricSource(Protocol):
    """What evaluation needs: the type of a metric and an aggregate over matching series."""

    def metric_type(self, name: str) -> str | None: ...

    def aggregate(self, name: str, tags: Mapping[str, str], aggregation: str) -> float | None: ...


def go_float(text: str) -> float | None:
    """``text`` as Go's ``strconv.ParseFloat`` reads it (k6 reads a threshold's numbers so),
    None where it returns an error: ``1_000``, ``.5``, ``5.``, ``0x1p4``, ``Inf``, ``NaN`` are
    numbers; ``1__0``, ``0x10`` (no exponent), ``+NaN`` and ``1e400`` (out of range) are not."""
    if _GO_SPECIAL.fullmatch(text):
        return float(text)
    hexa = _GO_HEX.fullmatch(text)
    m = hexa or _GO_DEC.fullmatch(text)
    if m is None or not re.search("[0-9a-fA-F]" if hexa else "[0-9]", m.group(1)):
        return None
    if not _underscores_ok(text, hexa=hexa is not None):
        return None
    clean = text.replace("_", "")
    try:
        value = float.fromhex(clean) if hexa else float(clean)
    except (ValueError, OverflowError):
        return None
    return None if math.isinf(value) else value  # Go: ErrRange


def _underscores_ok(text: str, *, hexa: bool) -> bool:
    """Go's ``underscoreOK``: each ``_`` between two digits (a base prefix counts as one)."""
    body = text.lstrip("+-")
    digits = "0123456789abcdefABCDEF" if hexa else "0123456789"
    saw = "0" if hexa else "^"
    for c in body[2:] if hexa else body:
        if c in digits:
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_expression(text: str) -> ThresholdExpr:
    """``<aggregation> <op> <value>`` as k6 1.1 parses it (``parseThresholdExpression``): the
    first of :data:`_OP_ORDER` found with text after it splits the expression, both sides
    trimmed; ``p(N)`` takes no spaces inside (``p( 95 )`` is refused, as k6 refuses it: it
    ran here before) and its N, like the value, is a number as Go reads one
    (:func:`go_float`). One difference by choice: a percentile outside 0..100 (or NaN), which
    k6 accepts and then panics on (exit 109) once its trend has two samples, is refused."""
    if not isinstance(text, str):
        raise ValueError(f"threshold must be a string like 'p(95)<2000', got {text!r}")
    bad = (
        f"bad threshold expression {text!r}: expected '<aggregation> <op> <value>', "
        "e.g. 'p(95)<2000', 'rate<0.01', 'count>0'"
    )
    for op in _OP_ORDER:
        left, _, right = text.partition(op)
        if right:
            break
    else:
        raise ValueError(bad)
    left, right = left.strip(), right.strip()
    value = go_float(right)
    if value is None:
        raise ValueError(bad)
    if left in _METHODS:
        agg = "p(0)" if left == "p" else left
    elif left.startswith("p(") and left.endswith(")"):
        pct = go_float(left[2:-1])
        if pct is None:
            raise ValueError(bad)
        if not 0 <= pct <= 100:
            raise ValueError(f"bad threshold expression {text!r}: percentile must be 0..100")
        # as written where Python reads it alike (``p(99.9)``), else k6's %g (``p(16)``)
        inner = left[2:-1]
        agg = left if "_" not in inner and "x" not in inner.lower() else f"p({pct:g})"
    else:
        raise ValueError(bad)
    # the source as written, spaces around it too: k6 keys its export's verdicts by it
    return ThresholdExpr(text, agg, op, value)


def parse_metric_key(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``name{tag:value,...}`` as k6 reads it (``ParseMetricName``, ``AddSubmetric``): spaces
    around a key or value go, and so do quotes (``{method:"POST"}`` is ``method`` ``POST``);
    a tag with no value is refused. Read verbatim, a quoted value matched no sample and its
    threshold passed where k6's failed (exit 0 against k6's 99). Spaces around the whole key
    are part of no metric's name: k6 refuses ``" http_reqs"`` and ``"http_reqs{a:b} "``."""
    m = _METRIC.match(key)
    if not m:
        raise ValueError(f"bad metric name {key!r}: expected 'name' or 'name{{tag:value}}'")
    tags: list[tuple[str, str]] = []
    if m.group("tags") is not None:
        for part in m.group("tags").split(","):
            k, sep, v = part.partition(":")
            k, v = k.strip().strip("\"'"), v.strip().strip("\"'")
            if not sep or not k or not v:
                raise ValueError(f"bad tag filter {part.strip()!r} in {key!r}: expected tag:value")
            tags.append((k, v))
    return m.group("name"), tuple(sorted(tags))


def k6_metric_key(key: str) -> str:
    """The name k6 gives a threshold's metric (its ``--summary-export`` key): a sub-metric's
    tag spec trimmed inside its braces (``NewSubmetric``), ``http_reqs{ status:200 }`` →
    ``http_reqs{status:200}``; spaces inside the spec stay. ``key`` parses
    (:func:`parse_metric_key`)."""
    name, brace, spec = key.partition("{")
    return f"{name}{{{spec[:-1].strip()}}}" if brace else key


def evaluate_one(t: Threshold, source: MetricSource) -> ThresholdResult:
    mtype = source.metric_type(t.metric)
    agg = t.expr.aggregation
    if mtype is not None and not _supports(mtype, agg):
        return ThresholdResult(t, None, False, f"{agg} is not defined for a {mtype} metric")
    observed = source.aggregate(t.metric, dict(t.tags), agg)
    if observed is None:
        if mtype in EMPTY_AS_ZERO:
            # k6 1.1 judges an empty trend's stats and an empty gauge's value as 0 at the end
            # of a run: `avg>50` on a custom trend no request filled fails (it passed here).
            return ThresholdResult(t, 0.0, t.expr.holds(0.0), "no samples")
        # k6 skips a rate with no samples (no value to compare); we say so.
        return ThresholdResult(t, None, True, "no samples")
    return ThresholdResult(t, observed, t.expr.holds(observed))


def _supports(mtype: str, aggregation: str) -> bool:
    base = "p(N)" if aggregation.startswith("p(") else aggregation
    return base in AGGREGATIONS_BY_TYPE.get(mtype, ())


def validate_thresholds(
    thresholds: Iterable[Threshold],
    source: str | None = None,
    metrics: Mapping[str, str] | None = None,
) -> None:
    """Refuse, before anything runs, a threshold k6 would refuse (exit 104): a metric no run
    produces, or an aggregation its type lacks. ``metrics`` maps name → type (default: every
    metric in :data:`simulator.metrics.BUILTIN`). Raises :class:`ConfigError` naming the key.

    Without this a typo (``http_req_duraton``) is a threshold with no samples, which passes:
    a CI gate that cannot fail.
    """
    if metrics is None:
        from simulator.metrics import BUILTIN

        metrics = {name: spec[0] for name, spec in BUILTIN.items()}
    for t in thresholds:
        key = f'thresholds."{t.metric_key}"'
        mtype = metrics.get(t.metric)
        if mtype is None:
            near = difflib.get_close_matches(t.metric, list(metrics), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"known: {', '.join(sorted(metrics))}"
            raise ConfigError(f"no metric named {t.metric!r} ({hint})", source=source, key=key)
        if not _supports(mtype, t.expr.aggregation):
            raise ConfigError(
                f"{t.expr.source!r}: {t.metric} is a {mtype} metric, which has no "
                f"{t.expr.aggregation} (use {' or '.join(AGGREGATIONS_BY_TYPE[mtype])})",
                source=source,
                key=key,
            )
