"""End-of-test summary: ``summary.json`` (k6's ``--summary-export`` shape) and the text table.

``metrics.<name>.<stat>`` is what k6 writes (``metrics.http_req_duration["p(95)"]`` in ms,
``metrics.http_reqs.count``, ``metrics.http_req_failed.value``, thresholds true when failed),
so k6's tooling reads it; scfleet's additions live under the single ``scfleet`` key, never
mixed into k6's objects. :func:`figures` reads both halves for one metric key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from simulator.config import RunConfig, executor_duration
from simulator.durations import format_duration
from simulator.metrics import (
    BUILTIN,
    Counter,
    Gauge,
    Rate,
    Registry,
    Trend,
    failure_breakdown,
    start_accuracy,
    trend_stat,
)
from simulator.metrics.thresholds import parse_metric_key
from simulator.run.runner import RunResult

#: Metrics printed in the text summary (when present), in this order.
ORDER = (
    "boards_lost",
    "boards_rejoined",
    "checks",
    "data_received",
    "data_sent",
    "dropped_iterations",
    "http_req_blocked",
    "http_req_connecting",
    "http_req_corrected_duration",
    "http_req_duration",
    "http_req_failed",
    "http_req_receiving",
    "http_req_sending",
    "http_req_waiting",
    "http_reqs",
    "interrupted_iterations",
    "iteration_duration",
    "iteration_errors",
    "iterations",
    "schedule_lag",
    "vus",
    "vus_max",
)
#: Tags broken out as sub-metrics for these metrics.
BREAKDOWN_METRICS = ("http_req_duration", "http_reqs", "http_req_failed")
BREAKDOWN_TAGS = ("scenario", "kind")


#: Metrics k6 itself reports. Custom metrics (a Python device's, not in ``BUILTIN``) sit beside
#: them, as k6 lists a script's own; every other metric is scfleet's (under the ``scfleet`` key)
#: unless a threshold names it.
K6_METRICS = frozenset(
    {
        "checks",
        "data_received",
        "data_sent",
        "dropped_iterations",
        "http_req_blocked",
        "http_req_connecting",
        "http_req_duration",
        "http_req_failed",
        "http_req_receiving",
        "http_req_sending",
        "http_req_tls_handshaking",
        "http_req_waiting",
        "http_reqs",
        "iteration_duration",
        "iterations",
        "vus",
        "vus_max",
    }
)
#: k6's counters made with their scenario here, where k6 sends a sample only per event (a
#: drop, a completed iteration): at 0 with no threshold naming them they are not in k6's
#: export, only scfleet's; nor is a k6 trend with no samples (``iteration_duration``).
UNSEEN_WHEN_ZERO = frozenset({"dropped_iterations", "iterations"})
#: Always in the scfleet section for trends, whatever ``summary_trend_stats`` says.
EXTRA_TREND_STATS = ("p(99)",)
#: k6's default summaryTrendStats (a run folder that does not record them).
K6_TREND_STATS = ("avg", "min", "med", "max", "p(90)", "p(95)")
#: k6's root group id: md5 of its path, "".
ROOT_GROUP_ID = hashlib.md5(b"").hexdigest()


def _num(v: float) -> float | int:
    """Whole numbers as JSON integers (k6 writes ``"count": 20``, not ``20.0``)."""
    return int(v) if float(v).is_integer() else v


def metric_stats(
    reg: Registry,
    name: str,
    tags: dict[str, str] | None,
    duration: float,
    trend_stats: tuple[str, ...],
) -> dict[str, Any] | None:
    """One metric's figures under k6's stat names (trends: ``trend_stats`` plus ``count``)."""
    m = reg.merged(name, tags)
    if m is None:
        return None
    if isinstance(m, Trend):
        out: dict[str, Any] = {s: trend_stat(m.hist, s) for s in trend_stats}
        out["count"] = m.hist.count
        return out
    if isinstance(m, Rate):
        return {"passes": m.passes, "fails": m.total - m.passes, "value": m.rate}
    if isinstance(m, Counter):
        return {"count": _num(m.value), "rate": m.value / duration if duration > 0 else 0.0}
    if isinstance(m, Gauge):
        return {"value": _num(m.value), "min": _num(m.min), "max": _num(m.max)}
    return None


def empty_stats(mtype: str | None, trend_stats: tuple[str, ...]) -> dict[str, Any]:
    """A metric with no samples as k6 1.1 writes it: zeros (an empty trend's every stat, a
    gauge's value, a counter's count, a rate's passes and fails), not an object with none,
    which a reader of k6's shape (``metrics[key]["avg"]``) fails on."""
    if mtype == "trend":
        return {**dict.fromkeys(trend_stats, 0), "count": 0}
    if mtype == "rate":
        return {"passes": 0, "fails": 0, "value": 0}
    if mtype == "counter":
        return {"count": 0, "rate": 0}
    if mtype == "gauge":
        return {"value": 0, "min": 0, "max": 0}
    return {}


def _submetric_keys(result: RunResult) -> list[tuple[str, str, dict[str, str]]]:
    keys: dict[str, tuple[str, dict[str, str]]] = {}
    reg = result.registry
    for th in result.config.thresholds:
        if th.tags:
            keys[th.metric_key] = (th.metric, dict(th.tags))
    if "true" in reg.tag_values("expected_response", "http_req_duration"):
        keys["http_req_duration{expected_response:true}"] = (
            "http_req_duration",
            {"expected_response": "true"},
        )
    for metric in BREAKDOWN_METRICS:
        for tag in BREAKDOWN_TAGS:
            values = reg.tag_values(tag, metric)
            if len(values) > 1 or (tag == "kind" and "physical" in values):
                for v in values:
                    keys[f"{metric}{{{tag}:{v}}}"] = (metric, {tag: v})
    return [(k, m, t) for k, (m, t) in keys.items()]


def split_metrics(
    full: Mapping[str, Mapping[str, Any]],
    types: Mapping[str, str],
    trend_stats: Sequence[str],
    threshold_keys: Iterable[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Figures per metric key → (k6's ``metrics``, scfleet's additions).

    k6's part holds exactly what ``k6 --summary-export`` would: k6's metrics, sub-metrics that
    thresholds name (and ``{expected_response:true}``), trends with ``trend_stats`` only.
    Everything else — ``count``/``p(99)`` of trends, scfleet's own metrics, the per-scenario and
    per-kind breakdowns — goes to the second dict, under the same keys.
    """
    named = set(threshold_keys)
    named_metrics = {parse_metric_key(k)[0] for k in named}
    k6: dict[str, dict[str, Any]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for key, stats in full.items():
        name = key.split("{", 1)[0]
        is_k6 = (
            key in named
            or key == "http_req_duration{expected_response:true}"
            or (
                "{" not in key
                and (name in K6_METRICS or name in named_metrics or name not in BUILTIN)
            )
        )
        # k6 lists a metric once a sample came (a drop, a completed iteration); the empty one
        # stays in scfleet's section
        # (http_req_tls_handshaking over HTTP is k6's zero per request, listed, not empty)
        unseen = key in UNSEEN_WHEN_ZERO or (
            key in K6_METRICS and types.get(name) == "trend" and key != "http_req_tls_handshaking"
        )
        if is_k6 and unseen and name not in named_metrics and not stats.get("count"):
            is_k6 = False
        if not is_k6:
            extra[key] = dict(stats)
            continue
        if types.get(name) == "trend":
            k6[key] = {s: stats[s] for s in trend_stats if s in stats}
            rest = {s: v for s, v in stats.items() if s not in trend_stats}
            if rest:
                extra[key] = rest
        else:
            k6[key] = dict(stats)
    return k6, extra


def summary_dict(result: RunResult) -> dict[str, Any]:
    """``summary.json``: k6's ``--summary-export`` document plus one ``scfleet`` key."""
    reg = result.registry
    stats = result.config.output.summary_trend_stats
    all_stats = (*stats, *(s for s in EXTRA_TREND_STATS if s not in stats))
    dur = result.duration
    full: dict[str, Any] = {}
    for name in sorted(reg.types):
        s = metric_stats(reg, name, None, dur, all_stats)
        if s is not None:
            full[name] = s
    for key, metric, tags in _submetric_keys(result):
        s = metric_stats(reg, metric, tags, dur, all_stats)
        if s is not None:
            full[key] = s
    for r in result.thresholds:  # a threshold's metric is listed even without samples
        full.setdefault(
            r.threshold.metric_key, empty_stats(reg.types.get(r.threshold.metric), all_stats)
        )
    if "http_reqs" in full and not (result.config.target.url or "").startswith("https"):
        # k6's export of an HTTP run has it: each plain-HTTP request's TLS handshake, 0
        full.setdefault("http_req_tls_handshaking", empty_stats("trend", all_stats))
    listed = [r.threshold.metric_key for r in result.thresholds]
    if result.config.no_thresholds:  # k6 still makes their sub-metrics, listed with samples
        listed = [th.metric_key for th in result.config.thresholds if th.tags]
    metrics, extra = split_metrics(full, reg.types, stats, listed)
    thresholds = []
    for r in result.thresholds:
        th = r.threshold
        # k6's sense: true means the threshold FAILED
        metrics[th.metric_key].setdefault("thresholds", {})[th.expr.source] = not r.ok
        thresholds.append(
            {
                "metric": th.metric_key,
                "expression": th.expr.source,
                "ok": r.ok,
                "observed": r.observed,
                "note": r.note,
                "abort_on_fail": th.abort_on_fail,
            }
        )
    used = {k.split("{", 1)[0] for k in (*metrics, *extra)}
    return {
        "root_group": root_group(reg),
        "metrics": metrics,
        "scfleet": {
            "format": SCFLEET_FORMAT,
            "metrics": extra,
            "types": {n: {"type": reg.types[n], "contains": reg.contains[n]} for n in sorted(used)},
            "thresholds": thresholds,
            "state": {
                "testRunDurationMs": dur * 1000,
                "startedAt": result.started_at,
                "interrupted": result.interrupted,
                "abortedBy": result.aborted,
                "thresholdsOk": result.thresholds_ok,
                # of interrupted_iterations, cut in their think time (requests all answered)
                "cutInThinkTime": result.think_cut,
            },
            "options": {
                "target": result.target,
                "summaryTrendStats": list(stats),
                "source": result.config.source,
                # [run] warm_connections: opened before the start (0: dialled on demand)
                "warmConnections": result.warmed,
                # of how many asked: fewer opened when connects took longer than WARM_WAIT
                "warmConnectionsAsked": result.warm_asked,
                # --no-thresholds: none judged (thresholds empty, thresholdsOk true)
                "noThresholds": result.config.no_thresholds,
            },
            "scenarios": {
                sc.name: {
                    "executor": sc.executor.kind,
                    "device": sc.device.kind,
                    "start_time_s": sc.start_time,
                    "duration_s": executor_duration(sc.executor),
                }
                for sc in result.config.scenarios
            },
            "notes": result.notes,
            "failures": [asdict(row) for row in failure_breakdown(reg)],
            "start_accuracy": start_accuracy(reg),
        },
    }


#: Version of the ``scfleet`` section; absent in run folders written before it existed.
SCFLEET_FORMAT = 2


def root_group(reg: Registry) -> dict[str, Any]:
    """k6's ``root_group``: every check (summed over scenarios) with its passes and fails."""
    checks: dict[str, dict[str, Any]] = {}
    for name in reg.tag_values("check", "checks"):
        m = reg.merged("checks", {"check": name})
        if not isinstance(m, Rate):
            continue
        path = f"::{name}"
        checks[name] = {
            "name": name,
            "path": path,
            "id": hashlib.md5(path.encode()).hexdigest(),
            "passes": m.passes,
            "fails": m.total - m.passes,
        }
    return {"name": "", "path": "", "id": ROOT_GROUP_ID, "groups": {}, "checks": checks}


def figures(summary: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Every figure summary.json holds for a metric key: k6's part and scfleet's, merged."""
    extra = summary.get("scfleet", {}).get("metrics", {}).get(key, {})
    return {**summary.get("metrics", {}).get(key, {}), **extra}


def upgrade_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A summary.json from before the ``scfleet`` section (format 1) in today's shape.

    Format 1 mixed scfleet's keys into k6's: ``thresholds``/``state``/``options``/``notes``/
    ``stages`` at the top, ``rate`` beside ``value`` in rates, ``{"ok": bool}`` thresholds.
    """
    if "scfleet" in doc:
        section = doc["scfleet"]
        fmt = section.get("format", SCFLEET_FORMAT) if isinstance(section, dict) else 1
        if isinstance(fmt, bool) or not isinstance(fmt, int) or not 1 <= fmt <= SCFLEET_FORMAT:
            # before, a future format was read as today's, its figures silently misread
            raise ValueError(
                f"scfleet.format {fmt!r} is not one this scfleet reads (formats 1 to "
                f"{SCFLEET_FORMAT}; a newer scfleet writes later ones)"
            )
        return dict(doc)
    if "metrics" not in doc or "state" not in doc:
        raise ValueError("not a summary.json written by scfleet (no metrics/state)")
    old_metrics: dict[str, Any] = {
        k: {s: v for s, v in m.items() if s != "thresholds" and not (s == "rate" and "passes" in m)}
        for k, m in doc["metrics"].items()
    }
    types = {}
    for key, m in old_metrics.items():
        name = key.split("{", 1)[0]
        if "avg" in m or "med" in m:
            types[name] = "trend"
        elif "passes" in m:
            types[name] = "rate"
        elif "count" in m:
            types[name] = "counter"
        elif "value" in m:
            types[name] = "gauge"
    opts = dict(doc.get("options", {}))
    stats = opts.get("summaryTrendStats") or list(K6_TREND_STATS)
    thresholds = list(doc.get("thresholds", []))
    metrics, extra = split_metrics(old_metrics, types, stats, (t["metric"] for t in thresholds))
    for t in thresholds:
        metrics.setdefault(t["metric"], {}).setdefault("thresholds", {})[t["expression"]] = not t[
            "ok"
        ]
    scfleet: dict[str, Any] = {
        "format": 1,
        "metrics": extra,
        "types": {
            n: {"type": t, "contains": BUILTIN.get(n, (t, "default"))[1]} for n, t in types.items()
        },
        "thresholds": thresholds,
        "state": dict(doc.get("state", {})),
        "options": opts,
        "scenarios": dict(doc.get("scenarios", {})),
        "notes": list(doc.get("notes", [])),
    }
    if "stages" in doc:
        scfleet["stages"] = doc["stages"]
    return {
        "root_group": {"name": "", "path": "", "id": ROOT_GROUP_ID, "groups": {}, "checks": {}},
        "metrics": metrics,
        "scfleet": scfleet,
    }


def _fmt_value(contains: str, v: float) -> str:
    if contains == "time":
        if v >= 1000:
            return f"{v / 1000:.2f}s"
        if v >= 1:
            return f"{v:.2f}ms"
        return f"{v * 1000:.2f}µs"
    if contains == "data":
        for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if v >= size:
                return f"{v / size:.1f} {unit}"
        return f"{v:.0f} B"
    return f"{v:g}" if v != int(v) else f"{int(v)}"


def custom_metrics(summary: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A Python device's own metrics as (name, type, figures) for the report, as the text
    summary prints them."""
    sc = summary.get("scfleet", {})
    kinds = sc.get("types", {})
    stats = sc.get("options", {}).get("summaryTrendStats") or K6_TREND_STATS
    names = {k for k in (*summary.get("metrics", {}), *sc.get("metrics", {})) if "{" not in k}
    out = []
    for name in sorted(n for n in names if n not in BUILTIN):
        fig = {k: v for k, v in figures(summary, name).items() if k != "thresholds"}
        kind = kinds.get(name, {})
        if fig and kind:
            out.append((name, str(kind.get("type", "")), _figures_text(kind, fig, stats)))
    return out


def _line(
    label: str, kind: Mapping[str, str], s: dict[str, Any], stats: Sequence[str], mark: str
) -> str:
    dots = "." * max(2, 34 - len(label))
    return f"  {mark} {label}{dots}: {_figures_text(kind, s, stats)}"


def _figures_text(kind: Mapping[str, str], s: Mapping[str, Any], stats: Sequence[str]) -> str:
    mtype, contains = kind.get("type"), kind.get("contains", "default")
    if mtype == "trend":
        # a trend's count is of samples, never ms or bytes (k6 prints ``count=13``)
        body = " ".join(
            f"{k}={_fmt_value('default' if k == 'count' else contains, s[k])}"
            for k in stats
            if k in s
        )
    elif mtype == "rate":
        body = f"{s['value'] * 100:.2f}%  {s['passes']} out of {s['passes'] + s['fails']}"
    elif mtype == "counter":
        rate = s["rate"]
        if contains == "data":
            body = f"{_fmt_value(contains, s['count'])}  {_fmt_value(contains, rate)}/s"
        else:
            body = f"{_fmt_value(contains, s['count'])}  {rate:.2f}/s"
    else:
        body = f"{_fmt_value(contains, s['value'])}  min={s['min']:g} max={s['max']:g}"
    return body


def describe_scenarios(cfg: RunConfig) -> list[str]:
    """One line per scenario (summary.txt): what it offers, its device kind and timings."""
    out = []
    for sc in cfg.scenarios:
        ex = sc.executor
        d = format_duration(executor_duration(ex))
        what = ex.describe(d)
        start = f", startTime: {format_duration(sc.start_time)}" if sc.start_time else ""
        out.append(
            f"    * {sc.name}: {what} ({sc.device.kind}{start}, "
            f"gracefulStop: {format_duration(sc.graceful_stop)})"
        )
    return out


def render_text(result: RunResult) -> str:
    """summary.txt without the stage table, from a finished run's result."""
    return text_of(summary_dict(result), describe_scenarios(result.config), len(result.devices))


def text_of(summary: Mapping[str, Any], scenarios: Sequence[str], devices: int | None) -> str:
    """summary.txt without the stage table, from summary.json (the run-folder model), so the
    end of a run and ``scfleet report`` write it the same way. ``scenarios``: the lines of
    :func:`describe_scenarios`; ``devices``: the device rows (None: unknown, an old folder)."""
    sc = summary["scfleet"]
    metrics = {k: figures(summary, k) for k in (*summary["metrics"], *sc["metrics"])}
    kinds: Mapping[str, Mapping[str, str]] = sc.get("types", {})
    stats = list(sc.get("options", {}).get("summaryTrendStats") or K6_TREND_STATS)
    stats += [s for s in EXTRA_TREND_STATS if s not in stats]
    failing: dict[str, bool] = {}  # metric key → all its thresholds passed
    for t in sc["thresholds"]:
        failing[t["metric"]] = failing.get(t["metric"], True) and bool(t["ok"])
    state = sc.get("state", {})
    lines = [f"  target: {sc.get('options', {}).get('target', '')}"]
    lines += warm_lines(sc.get("options", {}))
    lines.append(f"  scenarios: {len(sc.get('scenarios', {}))}")
    lines += scenarios
    lines.append("")
    if sc.get("options", {}).get("noThresholds"):
        lines += [NO_THRESHOLDS_LINE, ""]
    if sc["thresholds"]:
        lines.append("  THRESHOLDS")
        for t in sc["thresholds"]:
            mark = "✓" if t["ok"] else "✗"
            obs = "no samples" if t.get("observed") is None else f"{t['observed']:.4g}"
            note = t.get("note")
            lines.append(
                f"    {mark} {t['metric']}: '{t['expression']}' "
                f"observed {obs}{' (' + note + ')' if note else ''}"
            )
        lines.append("")
    lines.append("  METRICS")
    sub_keys = [k for k in metrics if "{" in k]
    custom = {n for n in metrics if "{" not in n and n not in BUILTIN}  # Python devices' own
    marks = {True: "✓", False: "✗"}
    for name in sorted({*ORDER, *custom}):
        if name not in metrics or "thresholds" in metrics[name] and len(metrics[name]) == 1:
            continue
        kind = kinds.get(name, {})
        mark = marks[failing[name]] if name in failing else " "
        lines.append(_line(name, kind, metrics[name], stats, mark))
        for key in sub_keys:
            metric, tags = parse_metric_key(key)
            if metric == name and ("count" in metrics[key] or "value" in metrics[key]):
                label = "  { " + ", ".join(f"{k}:{v}" for k, v in tags) + " }"
                mark = marks[failing[key]] if key in failing else " "
                lines.append(_line(label, kind, metrics[key], stats, mark))
    lines.append("")
    how = "interrupted" if state.get("interrupted") else "complete"
    if state.get("abortedBy"):
        how = f"aborted by threshold {state['abortedBy']}"
    reqs = metrics.get("http_reqs", {}).get("count", 0)
    duration = float(state.get("testRunDurationMs", 0.0)) / 1000
    lines.append(
        f"  run {how}: {format_duration(duration)}, {int(reqs)} requests, "
        f"{'?' if devices is None else devices} devices"
    )
    acc = sc.get("start_accuracy")
    if acc:
        lines.append(
            f"  start accuracy (actual − scheduled): p1 {acc['p1_ms'] * 1000:.0f} µs, "
            f"median {acc['p50_ms'] * 1000:.0f} µs, p99 {acc['p99_ms'] * 1000:.0f} µs, "
            f"max {acc['max_ms']:.2f} ms"
        )
    lines += failure_lines(sc.get("failures", []))
    for note in sc.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


#: summary.txt's word on a run with ``--no-thresholds`` (k6 prints no THRESHOLDS section then):
#: the stage table judges its stages by its defaults, as for a file without ``[thresholds]``
NO_THRESHOLDS_LINE = (
    "  thresholds: off (--no-thresholds): none judged, none can fail or abort the run; the "
    "stage table judges each stage by its defaults (http_req_failed rate<0.01, "
    "http_req_duration p(95)<2000)"
)


def warm_lines(options: Mapping[str, Any]) -> list[str]:
    """The connections opened before the start, when any (``[run] warm_connections``): the
    first requests' http_req_connecting is then 0 by choice, not the target's doing."""
    from simulator.http.fast import WARM_WAIT

    warmed = int(options.get("warmConnections", 0))
    asked = int(options.get("warmConnectionsAsked", 0))  # 0: a folder from before it was kept
    if warmed <= 0 and asked <= 0:
        return []
    if warmed >= asked:
        return [
            f"  connections opened before the start: {warmed} ([run] warm_connections; "
            "the first requests' http_req_connecting is 0 by choice)"
        ]
    return [
        f"  connections opened before the start: {warmed} of {asked} asked ([run] "
        f"warm_connections; those not connected within {WARM_WAIT:g} s were left to the "
        "requests, which dial and wait for them as needed)"
    ]


def failure_lines(failures: list[dict[str, Any]]) -> list[str]:
    """Failed requests by reason and status, one line each (summary.txt)."""
    out = []
    for f in failures:
        what = f"error {f['error']}" if f["error"] else f"status {f['status']}"
        if f["error"] and f["status"]:  # an answer the engine names (sequence-conflict: 409)
            what += f", status {f['status']}"
        code = f" (error_code {f['error_code']})" if f["error_code"] else ""
        out.append(f"  failed: {f['count']} × {what}{code}")
    return out
