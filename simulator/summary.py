"""End-of-test summary: ``summary.json`` in k6's summary-export shape, and the text table.

``metrics.<name>.<stat>`` mirrors k6 (``metrics.http_req_duration["p(95)"]`` in ms,
``metrics.http_reqs.count``, ``metrics.http_req_failed.rate``); tagged sub-metrics appear
under keys like ``http_req_duration{scenario:iot_upload}``, as in k6.
"""

from __future__ import annotations

from typing import Any

from simulator.config import RunConfig, executor_duration
from simulator.durations import format_duration
from simulator.metrics import Counter, Gauge, Rate, Registry, Trend, trend_stat
from simulator.runner import RunResult
from simulator.thresholds import parse_metric_key

#: Metrics printed in the text summary (when present), in this order.
ORDER = (
    "boards_lost",
    "boards_rejoined",
    "checks",
    "data_received",
    "data_sent",
    "dropped_iterations",
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
    "iterations",
    "schedule_lag",
    "vus",
    "vus_max",
)
#: Tags broken out as sub-metrics for these metrics.
BREAKDOWN_METRICS = ("http_req_duration", "http_reqs", "http_req_failed")
BREAKDOWN_TAGS = ("scenario", "kind")


def metric_stats(
    reg: Registry,
    name: str,
    tags: dict[str, str] | None,
    duration: float,
    trend_stats: tuple[str, ...],
) -> dict[str, Any] | None:
    m = reg.merged(name, tags)
    if m is None:
        return None
    if isinstance(m, Trend):
        is_time = reg.contains.get(name) == "time"
        out: dict[str, Any] = {s: trend_stat(m.hist, s, is_time) for s in trend_stats}
        out["count"] = m.hist.count
        return out
    if isinstance(m, Rate):
        return {"rate": m.rate, "value": m.rate, "passes": m.passes, "fails": m.total - m.passes}
    if isinstance(m, Counter):
        return {"count": m.value, "rate": m.value / duration if duration > 0 else 0.0}
    if isinstance(m, Gauge):
        return {"value": m.value, "min": m.min, "max": m.max}
    return None


def _submetric_keys(result: RunResult) -> list[tuple[str, str, dict[str, str]]]:
    keys: dict[str, tuple[str, dict[str, str]]] = {}
    reg = result.registry
    for th in result.config.thresholds:
        if th.tags:
            keys[th.metric_key] = (th.metric, dict(th.tags))
    for metric in BREAKDOWN_METRICS:
        for tag in BREAKDOWN_TAGS:
            values = reg.tag_values(tag, metric)
            if len(values) > 1 or (tag == "kind" and "physical" in values):
                for v in values:
                    keys[f"{metric}{{{tag}:{v}}}"] = (metric, {tag: v})
    return [(k, m, t) for k, (m, t) in keys.items()]


def summary_dict(result: RunResult) -> dict[str, Any]:
    reg = result.registry
    stats = result.config.output.summary_trend_stats
    dur = result.duration
    metrics: dict[str, Any] = {}
    for name in sorted(reg.types):
        s = metric_stats(reg, name, None, dur, stats)
        if s is not None:
            metrics[name] = s
    for key, metric, tags in _submetric_keys(result):
        s = metric_stats(reg, metric, tags, dur, stats)
        if s is not None:
            metrics[key] = s
    thresholds = []
    for r in result.thresholds:
        th = r.threshold
        entry = metrics.setdefault(th.metric_key, {})
        entry.setdefault("thresholds", {})[th.expr.source] = {"ok": r.ok}
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
    return {
        "metrics": metrics,
        "thresholds": thresholds,
        "state": {
            "testRunDurationMs": dur * 1000,
            "startedAt": result.started_at,
            "interrupted": result.interrupted,
            "abortedBy": result.aborted,
            "thresholdsOk": result.thresholds_ok,
        },
        "options": {
            "target": result.target,
            "summaryTrendStats": list(stats),
            "source": result.config.source,
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
    }


def _fmt_value(name: str, reg: Registry, v: float) -> str:
    contains = reg.contains.get(name, "default")
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


def _line(
    label: str, name: str, reg: Registry, s: dict[str, Any], stats: tuple[str, ...], mark: str
) -> str:
    mtype = reg.types.get(name)
    if mtype == "trend":
        body = " ".join(f"{k}={_fmt_value(name, reg, s[k])}" for k in stats if k in s)
    elif mtype == "rate":
        body = f"{s['rate'] * 100:.2f}%  {s['passes']} out of {s['passes'] + s['fails']}"
    elif mtype == "counter":
        rate = s["rate"]
        if reg.contains.get(name) == "data":
            body = f"{_fmt_value(name, reg, s['count'])}  {_fmt_value(name, reg, rate)}/s"
        else:
            body = f"{_fmt_value(name, reg, s['count'])}  {rate:.2f}/s"
    else:
        body = f"{_fmt_value(name, reg, s['value'])}  min={s['min']:g} max={s['max']:g}"
    dots = "." * max(2, 34 - len(label))
    return f"  {mark} {label}{dots}: {body}"


def _describe_scenario(cfg: RunConfig) -> list[str]:
    out = []
    for sc in cfg.scenarios:
        ex = sc.executor
        d = format_duration(executor_duration(ex))
        if ex.kind == "constant-arrival-rate":
            what = f"{ex.rate / ex.time_unit:g} iterations/s for {d}"  # type: ignore[union-attr]
        elif ex.kind == "ramping-arrival-rate":
            peak = max(s.target for s in ex.stages) / ex.time_unit  # type: ignore[union-attr]
            what = f"up to {peak:g} iterations/s for {d} over {len(ex.stages)} stages"  # type: ignore[union-attr]
        elif ex.kind == "constant-vus":
            what = f"{ex.vus} looping VUs for {d}"  # type: ignore[union-attr]
        elif ex.kind == "ramping-vus":
            peak = max(s.target for s in ex.stages)  # type: ignore[union-attr]
            what = f"up to {peak:g} looping VUs for {d} over {len(ex.stages)} stages"  # type: ignore[union-attr]
        else:
            what = f"{ex.vus} VUs × {ex.iterations} iterations (max {d})"  # type: ignore[union-attr]
        start = f", startTime: {format_duration(sc.start_time)}" if sc.start_time else ""
        out.append(
            f"    * {sc.name}: {what} ({sc.device.kind}{start}, "
            f"gracefulStop: {format_duration(sc.graceful_stop)})"
        )
    return out


def render_text(result: RunResult) -> str:
    reg = result.registry
    summary = summary_dict(result)
    metrics = summary["metrics"]
    stats = result.config.output.summary_trend_stats
    failing: dict[str, bool] = {}  # metric key → all its thresholds passed
    for r in result.thresholds:
        failing[r.threshold.metric_key] = failing.get(r.threshold.metric_key, True) and r.ok
    lines = [f"  target: {result.target}", f"  scenarios: {len(result.config.scenarios)}"]
    lines += _describe_scenario(result.config)
    lines.append("")
    if result.thresholds:
        lines.append("  THRESHOLDS")
        for r in result.thresholds:
            mark = "✓" if r.ok else "✗"
            obs = "no samples" if r.observed is None else f"{r.observed:.4g}"
            lines.append(
                f"    {mark} {r.threshold.metric_key}: '{r.threshold.expr.source}' "
                f"observed {obs}{' (' + r.note + ')' if r.note else ''}"
            )
        lines.append("")
    lines.append("  METRICS")
    sub_keys = [k for k in metrics if "{" in k]
    for name in ORDER:
        if name not in metrics or "thresholds" in metrics[name] and len(metrics[name]) == 1:
            continue
        mark = {True: "✓", False: "✗"}.get(failing.get(name), " ")  # type: ignore[arg-type]
        lines.append(_line(name, name, reg, metrics[name], stats, mark))
        for key in sub_keys:
            metric, tags = parse_metric_key(key)
            if metric == name and ("count" in metrics[key] or "rate" in metrics[key]):
                label = "  { " + ", ".join(f"{k}:{v}" for k, v in tags) + " }"
                mark = {True: "✓", False: "✗"}.get(failing.get(key), " ")  # type: ignore[arg-type]
                lines.append(_line(label, name, reg, metrics[key], stats, mark))
    lines.append("")
    state = "interrupted" if result.interrupted else "complete"
    if result.aborted:
        state = f"aborted by threshold {result.aborted}"
    reqs = metrics.get("http_reqs", {}).get("count", 0)
    lines.append(
        f"  run {state}: {format_duration(result.duration)}, {int(reqs)} requests, "
        f"{len(result.devices)} devices"
    )
    for note in result.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
