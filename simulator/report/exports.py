"""The run's time series and thresholds in formats other tools already read.

* ``timeline-1s.ndjson`` — the per-second timeline in the *shape* of k6's ``--out json``
  lines (``Metric`` declarations, ``Point`` objects) so the same parsers read it, but each point
  is one metric per tick per scenario (the tick's count, rate or mean), not a sample: it is not
  k6's per-sample stream, hence its name; ``--out json=FILE`` writes that (simulator.report.streams).
  Tick percentiles go out as ``http_req_duration_p50/p95/p99`` so ``http_req_duration`` keeps
  the mean's meaning; sampled resources appear as gauges named ``scfleet_<prefix>_<key>``.
* ``timeline.csv`` — one row per tick per scenario (:data:`TICK_FIELDS`, ``interrupted`` being
  the iterations the graceful stop cut, ``think_cut`` those of them cut in their think time),
  resource columns repeated.
* ``junit.xml`` — one test case per threshold, failures marked, for CI test reports.
* ``handle-summary.json`` — the ``data`` object k6 passes to ``handleSummary()``, as
  ``JSON.stringify(data)`` writes it: the shape k6-html-reporter and k6-reporter read (they no
  longer read ``--summary-export`` files, which ``summary.json`` is).
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

#: name → (k6 type, contains) for the per-scenario series.
SCENARIO_METRICS: dict[str, tuple[str, str]] = {
    "http_reqs": ("counter", "default"),
    "http_req_failed": ("rate", "default"),
    "http_req_duration": ("trend", "time"),
    "http_req_duration_p50": ("trend", "time"),
    "http_req_duration_p95": ("trend", "time"),
    "http_req_duration_p99": ("trend", "time"),
    "iterations": ("counter", "default"),
    "dropped_iterations": ("counter", "default"),
    "interrupted_iterations": ("counter", "default"),
    "data_sent": ("counter", "data"),
    "data_received": ("counter", "data"),
    "vus": ("gauge", "default"),
}
TICK_FIELDS = (
    "requests",
    "failed",
    "dropped",
    "iterations",
    "interrupted",
    "think_cut",
    "iteration_errors",
    "sent",
    "received",
    "rps",
    "active",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "avg_ms",
)


def rfc3339(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, tz=UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def sampler_keys(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every ``prefix.key`` sampled in the run, in a stable order."""
    keys: set[str] = set()
    for p in timeline:
        keys.update(k for k in p if "." in k)
    return sorted(keys)


def _scenario_values(s: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    yield "http_reqs", s["requests"]
    if s["requests"]:
        yield "http_req_failed", s["failed"] / s["requests"]
        yield "http_req_duration", s["avg_ms"]
        yield "http_req_duration_p50", s["p50_ms"]
        yield "http_req_duration_p95", s["p95_ms"]
        yield "http_req_duration_p99", s["p99_ms"]
    yield "iterations", s["iterations"]
    yield "dropped_iterations", s["dropped"]
    if "interrupted" in s:  # not in a timeline from before it was counted per tick
        yield "interrupted_iterations", s["interrupted"]
    yield "data_sent", s["sent"]
    yield "data_received", s["received"]
    if "vus" in s:  # sampled at the tick as k6 samples it (after the run only if no tick did)
        yield "vus", s["vus"]


def ndjson_lines(
    timeline: Sequence[Mapping[str, Any]],
    started_at: float,
    thresholds: Sequence[tuple[str, str]] = (),
) -> Iterator[str]:
    """k6 JSON output lines (without newlines) for a timeline."""
    declared: set[str] = set()
    by_metric: dict[str, list[str]] = {}
    for key, expr in thresholds:
        by_metric.setdefault(key, []).append(expr)

    def declare(name: str, mtype: str, contains: str) -> Iterator[str]:
        if name in declared:
            return
        declared.add(name)
        data = {
            "name": name,
            "type": mtype,
            "contains": contains,
            "thresholds": by_metric.get(name, []),
            "submetrics": None,
        }
        yield json.dumps({"type": "Metric", "data": data, "metric": name})

    def point(name: str, when: str, value: float, tags: dict[str, str]) -> str:
        data = {"time": when, "value": value, "tags": tags}
        return json.dumps({"type": "Point", "data": data, "metric": name})

    for p in timeline:
        when = rfc3339(started_at + p["t"])
        for scenario, s in p.get("scenarios", {}).items():
            tags = {"scenario": scenario}
            for name, value in _scenario_values(s):
                mtype, contains = SCENARIO_METRICS[name]
                yield from declare(name, mtype, contains)
                yield point(name, when, value, tags)
        for key in sorted(k for k in p if "." in k):
            value = p[key]
            if value is None:
                continue
            prefix, _, rest = key.partition(".")
            if prefix == "conn_errors":
                name, tags = "scfleet_conn_errors", {"scenario": rest}
            else:
                name, tags = f"scfleet_{prefix}_{rest}".replace(".", "_"), {}
            yield from declare(name, "gauge", "default")
            yield point(name, when, value, tags)


def to_ndjson(
    timeline: Sequence[Mapping[str, Any]],
    started_at: float,
    thresholds: Sequence[tuple[str, str]] = (),
) -> str:
    return "".join(line + "\n" for line in ndjson_lines(timeline, started_at, thresholds))


def to_csv(timeline: Sequence[Mapping[str, Any]], started_at: float) -> str:
    extra = sampler_keys(timeline)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["time", "t", "span", "scenario", *TICK_FIELDS, *extra])
    for p in timeline:
        when = rfc3339(started_at + p["t"])
        tail = ["" if p.get(k) is None else p[k] for k in extra]
        for scenario, s in p.get("scenarios", {}).items():
            # a cell a folder from before the field lacks stays empty, as an unsampled one
            ticks = (s.get(f, "") for f in TICK_FIELDS)
            w.writerow([when, p["t"], p["span"], scenario, *ticks, *tail])
    return buf.getvalue()


def to_junit(thresholds: Sequence[Mapping[str, Any]], duration: float, started_at: float) -> str:
    """JUnit XML: one ``testcase`` per threshold (``summary.json``'s ``thresholds`` entries)."""
    failures = sum(1 for t in thresholds if not t["ok"])
    root = ET.Element(
        "testsuites",
        name="scfleet",
        tests=str(len(thresholds)),
        failures=str(failures),
        time=f"{duration:.3f}",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name="thresholds",
        tests=str(len(thresholds)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{duration:.3f}",
        timestamp=rfc3339(started_at)[:19],
    )
    for t in thresholds:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"thresholds.{t['metric']}",
            name=f"{t['metric']}: {t['expression']}",
            time="0",
        )
        observed = "no samples" if t.get("observed") is None else f"{t['observed']:.6g}"
        detail = f"observed {observed}" + (f" ({t['note']})" if t.get("note") else "")
        if not t["ok"]:
            failure = ET.SubElement(
                case,
                "failure",
                type="ThresholdFailed",
                message=f"{t['expression']} not met: {detail}",
            )
            failure.text = f"{t['metric']}: '{t['expression']}' {detail}"
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def handle_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """k6's ``handleSummary(data)`` object made from summary.json (k6's --summary-export shape).

    Differences from the export, as k6 1.1 writes them: each metric is ``{type, contains,
    values, thresholds}`` with thresholds ``{"expr": {"ok": bool}}`` (true means passed), rates
    carry ``rate``, the root group's checks and groups are lists, and ``options``/``state``
    are present. scfleet's additions are left out: tools that read this do not know them.
    """
    sc = summary.get("scfleet", {})
    types = sc.get("types", {})
    metrics: dict[str, Any] = {}
    for key, stats in summary.get("metrics", {}).items():
        name = key.split("{", 1)[0]
        kind = types.get(name, {})
        values = {k: v for k, v in stats.items() if k != "thresholds"}
        if kind.get("type") == "rate":
            values = {"rate": values.get("value", 0), **values}
            values.pop("value", None)
        entry: dict[str, Any] = {
            "type": kind.get("type", "trend"),
            "contains": kind.get("contains", "default"),
            "values": values,
        }
        if "thresholds" in stats:
            entry["thresholds"] = {
                e: {"ok": not failed} for e, failed in stats["thresholds"].items()
            }
        metrics[key] = entry
    group = dict(summary.get("root_group", {}))
    group["groups"] = list(group.get("groups", {}).values())
    group["checks"] = list(group.get("checks", {}).values())
    opts = sc.get("options", {})
    return {
        "root_group": group,
        "options": {
            "summaryTrendStats": opts.get("summaryTrendStats", []),
            "summaryTimeUnit": "",
            "noColor": False,
        },
        "state": {
            "isStdOutTTY": False,
            "isStdErrTTY": False,
            "testRunDurationMs": sc.get("state", {}).get("testRunDurationMs", 0),
        },
        "metrics": metrics,
    }
