"""The regression gate of ``scfleet compare BASE NEW --fail-on SPEC``.

A spec is a comma-separated list of rules; each rule names a figure of summary.json, the
direction that is worse, and how far NEW may move that way before the gate fails::

    SPEC   := RULE ("," RULE)*
    RULE   := FIGURE SIGN NUMBER UNIT
    SIGN   := "+"  (higher is worse: fail when NEW > BASE + margin)
            | "-"  (lower is worse:  fail when NEW < BASE - margin)
    UNIT   := "%"  (relative to BASE)  |  "pp" (percentage points; rates only, not gauges)
            | "ms" (milliseconds; latency statistics only)
    FIGURE := p(N) | avg | med | min | max      (of http_req_duration, ms)
            | error_rate                        (http_req_failed's rate)
            | checks                            (the checks' pass rate)
            | throughput                        (http_reqs per second)
            | METRIC.STAT                       e.g. http_req_waiting.p(95),
                                                http_req_duration{scenario:up}.avg,
                                                dropped_iterations.count

A figure missing from either run fails its rule (the gate cannot vouch for it); so does a run
that did not run its whole schedule (interrupted, a worker lost, aborted by a threshold, or
iterations its graceful stop cut): one more check, "whole runs", fails the gate whatever its
figures say.
"""

from __future__ import annotations

import enum
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SHORTHAND = {
    "error_rate": ("http_req_failed", "value"),
    "checks": ("checks", "value"),
    "throughput": ("http_reqs", "rate"),
}
_LATENCY_STAT = re.compile(r"avg|min|med|max|p\(\d+(?:\.\d+)?\)")
_STAT = re.compile(rf"(?:{_LATENCY_STAT.pattern}|count|rate|value)")
_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\{[^{}]*\})?")
_FIGURE = re.compile(rf"(?P<metric>{_METRIC.pattern})\.(?P<stat>{_STAT.pattern})")
_RULE = re.compile(r"(?P<figure>.+)(?P<sign>[+-])(?P<num>\d+(?:\.\d+)?)(?P<unit>%|pp|ms)")


class Unit(enum.Enum):
    PERCENT = "%"
    POINTS = "pp"
    MS = "ms"


@dataclass(frozen=True)
class Rule:
    """One ``FIGURE SIGN NUMBER UNIT`` of a spec, as written and as understood."""

    text: str
    metric: str
    stat: str
    higher_is_worse: bool
    margin: float
    unit: Unit

    def limit(self, base: float) -> float:
        """The worst NEW value this rule lets through, given BASE's."""
        if self.unit is Unit.PERCENT:
            step = abs(base) * self.margin / 100
        elif self.unit is Unit.POINTS:
            step = self.margin / 100
        else:
            step = self.margin
        return base + step if self.higher_is_worse else base - step


@dataclass(frozen=True)
class Outcome:
    """A rule judged on two runs; ``base``/``new`` are None when the run lacks the figure."""

    rule: Rule
    base: float | None
    new: float | None
    gauge: bool = False  # a gauge's value/min/max are plain numbers, not a share or ms
    empty: tuple[bool, bool] = (False, False)  # BASE/NEW's trend had no samples (k6's zeros)

    @property
    def limit(self) -> float | None:
        return None if self.base is None else self.rule.limit(self.base)

    @property
    def name(self) -> str:
        return self.rule.text

    @property
    def ok(self) -> bool:
        if self.base is None or self.new is None or self.limit is None:
            return False
        eps = 1e-12 * max(1.0, abs(self.limit))  # the same figure read twice passes
        if self.rule.higher_is_worse:
            return self.new <= self.limit + eps
        return self.new >= self.limit - eps

    def detail(self) -> str:
        """``BASE → NEW (change; limit L)`` or why the rule could not be judged."""
        if self.base is None or self.new is None:
            which = "BASE" if self.base is None else "NEW"
            if self.empty[0 if self.base is None else 1]:
                return f"{self.rule.metric}: no samples in the {which} run, no latency to judge"
            return f"{self.rule.metric}.{self.rule.stat} not in the {which} run's summary"
        fmt = _formatter(self.rule, self.gauge)
        change = self.new - self.base
        if self.rule.unit is Unit.POINTS:
            delta = f"{change * 100:+.2f}pp"
        elif self.base:
            delta = f"{change / abs(self.base) * 100:+.1f}%"
        else:
            delta = f"{change:+.6g}"
        assert self.limit is not None
        return f"{fmt(self.base)} → {fmt(self.new)} ({delta}; limit {fmt(self.limit)})"


@dataclass(frozen=True)
class WholeRuns:
    """Why BASE or NEW did not run its whole schedule (None: it did): figures of part of a run
    are no evidence either way, however they compare."""

    base: str | None
    new: str | None
    name = "whole runs"

    @property
    def ok(self) -> bool:
        return self.base is None and self.new is None

    def detail(self) -> str:
        cut = [f"{w} run was {why}" for w, why in (("BASE", self.base), ("NEW", self.new)) if why]
        return "; ".join(cut) or "both ran their whole schedule"


def unfinished(summary: Mapping[str, Any]) -> str | None:
    """Why a run's summary does not cover its whole schedule, or None. Iterations a graceful
    stop cut count too: as in k6 their requests are in no figure, so a NEW run whose server
    never answered half its uploads read error_rate 0.00% and passed the gate. Those cut while
    sleeping their think time (``cutInThinkTime``) had every request answered and do not count."""
    state = summary.get("scfleet", {}).get("state", {})
    if state.get("abortedBy"):
        return f"aborted by threshold {state['abortedBy']}"
    if state.get("interrupted"):
        return "interrupted (stopped before its schedule's end)"
    cut = summary.get("scfleet", {}).get("metrics", {}).get("interrupted_iterations", {})
    n = cut.get("count", 0) if isinstance(cut, Mapping) else 0
    asleep = state.get("cutInThinkTime", 0)
    if isinstance(n, (int, float)) and isinstance(asleep, (int, float)):
        n -= min(asleep, n)
    if isinstance(n, (int, float)) and n > 0:
        done = summary.get("metrics", {}).get("iterations", {}).get("count", 0)
        return (
            f"cut short by its graceful stop ({n:,.0f} of {n + done:,.0f} iterations still "
            "running, their requests in no figure)"
        )
    return None


def _formatter(rule: Rule, gauge: bool = False) -> Any:
    if gauge:
        return lambda v: f"{v:.6g}"
    if rule.stat == "value":
        return lambda v: f"{v * 100:.2f}%"
    if _LATENCY_STAT.fullmatch(rule.stat):
        return lambda v: f"{v:.1f} ms"
    if rule.stat == "rate":
        return lambda v: f"{v:.1f}/s"
    return lambda v: f"{v:.6g}"


def parse_rule(text: str) -> Rule:
    """One rule; ValueError with a one-line reason naming it when it is not one."""
    t = text.strip()
    m = _RULE.fullmatch(t)
    if not m:
        raise ValueError(
            f"{t!r}: expected FIGURE+N% / FIGURE-N% / FIGURE+Npp / FIGURE+Nms, e.g. p(95)+10%"
        )
    figure, unit = m["figure"], Unit(m["unit"])
    if figure in _SHORTHAND:
        metric, stat = _SHORTHAND[figure]
    elif _STAT.fullmatch(figure):
        metric, stat = "http_req_duration", figure
    else:
        fm = _FIGURE.fullmatch(figure)
        if not fm:
            raise ValueError(
                f"{t!r}: unknown figure {figure!r} (p(N), avg, med, min, max, error_rate, "
                "checks, throughput, or METRIC.STAT such as http_req_waiting.p(95))"
            )
        metric, stat = fm["metric"], fm["stat"]
    if unit is Unit.POINTS and stat != "value":
        raise ValueError(f"{t!r}: 'pp' (percentage points) is for rates such as error_rate")
    if unit is Unit.POINTS and _builtin_type(metric) == "gauge":
        raise ValueError(_points_on_gauge(t, metric))
    if unit is Unit.MS and not _LATENCY_STAT.fullmatch(stat):
        raise ValueError(f"{t!r}: 'ms' is for latency statistics such as p(95) or avg")
    margin = float(m["num"])
    if not math.isfinite(margin):
        raise ValueError(f"{t!r}: the margin must be a finite number")
    return Rule(t, metric, stat, m["sign"] == "+", margin, unit)


def _builtin_type(metric: str) -> str | None:
    from simulator.metrics import BUILTIN

    spec = BUILTIN.get(metric.split("{", 1)[0])
    return spec[0] if spec else None


def _points_on_gauge(text: str, metric: str) -> str:
    name = metric.split("{", 1)[0]
    return (
        f"{text!r}: {name} is a gauge, a number and not a share: 'pp' (percentage points) is "
        "for rates such as error_rate; use % for a gauge"
    )


def check_units(rules: Sequence[Rule], base: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """ValueError naming the rule when it puts ``pp`` on a gauge only the summaries know (a
    custom one): a share's points of a plain number would pass or fail on nothing."""
    for r in rules:
        if r.unit is Unit.POINTS and (_is_gauge(base, r) or _is_gauge(new, r)):
            raise ValueError(_points_on_gauge(r.text, r.metric))


def parse_spec(text: str) -> tuple[Rule, ...]:
    """A whole ``--fail-on`` value; ValueError with a one-line reason when it is not one."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    # a tagged figure may hold a comma inside its braces: glue those pieces back together
    rules: list[str] = []
    for p in parts:
        if rules and rules[-1].count("{") > rules[-1].count("}"):
            rules[-1] += "," + p
        else:
            rules.append(p)
    if not rules:
        raise ValueError("empty --fail-on: give rules such as 'p(95)+10%,error_rate+0.5pp'")
    return tuple(parse_rule(r) for r in rules)


def _figure(summary: Mapping[str, Any], rule: Rule) -> float | None:
    from simulator.report.summary import figures

    if _empty_trend(summary, rule):
        return None  # k6's zeros of an empty trend: no latency to judge, not 0 ms
    v = figures(summary, rule.metric).get(rule.stat)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _empty_trend(summary: Mapping[str, Any], rule: Rule) -> bool:
    """Whether the rule reads a latency of a trend with no samples (written as k6's zeros)."""
    from simulator.report.summary import figures

    count = figures(summary, rule.metric).get("count")
    return count == 0 and bool(_LATENCY_STAT.fullmatch(rule.stat))


Check = Outcome | WholeRuns


def _is_gauge(summary: Mapping[str, Any], rule: Rule) -> bool:
    """k6 writes a gauge as value/min/max, a rate as passes/fails/value."""
    from simulator.report.summary import figures

    figs = figures(summary, rule.metric)
    return "value" in figs and "passes" not in figs


def judge(rules: Sequence[Rule], base: Mapping[str, Any], new: Mapping[str, Any]) -> list[Check]:
    """Each rule on the two runs' summary.json documents, then "whole runs" when one was cut."""
    checks: list[Check] = [
        Outcome(
            r,
            _figure(base, r),
            _figure(new, r),
            _is_gauge(base, r) or _is_gauge(new, r),
            (_empty_trend(base, r), _empty_trend(new, r)),
        )
        for r in rules
    ]
    whole = WholeRuns(unfinished(base), unfinished(new))
    if not whole.ok:
        checks.append(whole)
    return checks


def render(outcomes: Sequence[Check]) -> str:
    """A few lines for a CI log: one per rule, then the gate's verdict."""
    width = max(len(o.name) for o in outcomes)
    lines = ["  GATE"]
    for o in outcomes:
        lines.append(f"  {'ok  ' if o.ok else 'FAIL'}  {o.name.ljust(width)}  {o.detail()}")
    failed = [o.name for o in outcomes if not o.ok]
    if failed:
        lines.append(f"  gate: FAILED {len(failed)} of {len(outcomes)} ({', '.join(failed)})")
    else:
        lines.append(f"  gate: passed {len(outcomes)} of {len(outcomes)}")
    return "\n".join(lines) + "\n"


def to_junit(outcomes: Sequence[Check], base: str, new: str, warning: str | None) -> str:
    """JUnit XML: one ``testcase`` per rule of the gate."""
    failures = sum(1 for o in outcomes if not o.ok)
    root = ET.Element("testsuites", name="scfleet compare", tests=str(len(outcomes)))
    root.set("failures", str(failures))
    suite = ET.SubElement(
        root,
        "testsuite",
        name="regression gate",
        tests=str(len(outcomes)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="base", value=base)
    ET.SubElement(props, "property", name="new", value=new)
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname="compare", name=o.name, time="0")
        if o.ok:
            ET.SubElement(case, "system-out").text = o.detail()
        else:
            fail = ET.SubElement(case, "failure", type="Regression", message=o.detail())
            fail.text = f"{o.name}: {o.detail()}"
    if warning:
        ET.SubElement(suite, "system-err").text = warning
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def config_differences(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys where two runs' config.json documents differ: the scenario file's settings,
    the overrides and the time scale (not the target's port, which an embedded server picks)."""

    def flat(doc: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _flatten(doc.get("config", {}), "", out)
        out["time_scale"] = doc.get("time_scale", 1.0)
        out["overrides"] = doc.get("overrides", [])
        return out

    a, b = flat(base), flat(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def difference_warning(keys: Sequence[str], limit: int = 6) -> str | None:
    """One line for stderr, or None when the configurations match."""
    if not keys:
        return None
    shown = ", ".join(keys[:limit]) + (
        f" and {len(keys) - limit} more" if len(keys) > limit else ""
    )
    return f"warning: the two runs' configurations differ ({shown}); the comparison may mislead"
