"""``scfleet report RUN_DIR`` and ``scfleet compare RUN_A RUN_B``.

Every report file is derived from the run folder alone (summary.json, timeline.json,
stages.json, config.json), so a report can be rebuilt after the fact — with a newer scfleet,
or after deleting the big files — and two runs can be compared without re-running either.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scfleet_core.errors import EXIT_OK, ConfigError

#: Files ``build_reports`` (re)writes besides the ``stages`` key of summary.json.
REPORT_FILES = (
    "report.html",
    "timeline-1s.ndjson",
    "timeline.csv",
    "junit.xml",
    "handle-summary.json",
)
STAGES_MARK = "\n\n  STAGES\n"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild the report files of a run folder",
        description="Rebuild report.html, timeline-1s.ndjson, timeline.csv, junit.xml and the "
        "stage table from a run folder.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by 'scfleet run'")
    p.set_defaults(func=report_command)
    c = sub.add_parser(
        "compare",
        help="what got better or worse between two runs",
        description="Compare two run folders: p95, error rate, throughput, knee, verdict.",
    )
    c.add_argument("run_a", metavar="RUN_A", help="the baseline run folder")
    c.add_argument("run_b", metavar="RUN_B", help="the run to compare with it")
    c.set_defaults(func=compare_command)


@dataclass
class RunData:
    """A run folder, loaded: what every report file is made from."""

    run_dir: Path
    summary: dict[str, Any]
    timeline: list[dict[str, Any]]
    config: dict[str, Any]
    thresholds: list[tuple[str, str]]
    rows: list[Any] = field(default_factory=list)
    assessments: list[Any] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("not a run folder (missing file)", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", source=str(path)) from None


def _recorder(run_dir: Path, config: Mapping[str, Any]) -> Any:
    """Per-stage windows and histograms; rebuilt from the config when stages.json is absent
    (then percentiles are request-weighted tick values, marked approximate)."""
    from simulator.stages import StageRecorder

    path = run_dir / "stages.json"
    if path.exists():
        return StageRecorder.from_dict(_read_json(path))
    from simulator.config import parse_config, scale_times

    try:
        cfg = parse_config(dict(config.get("config", {})), str(config.get("source", "<run>")))
        cfg = scale_times(cfg, float(config.get("time_scale", 1.0)))
    except Exception:  # noqa: BLE001 - an old or hand-edited folder: no stage table
        return StageRecorder({})
    return StageRecorder.for_config(cfg)


def load_run(run_dir: str | Path) -> RunData:
    from simulator.stages import stage_table

    d = Path(run_dir)
    if not d.is_dir():
        raise ConfigError("no such run folder", source=str(d))
    from simulator.summary import upgrade_summary

    try:
        summary = upgrade_summary(_read_json(d / "summary.json"))
    except ValueError as exc:
        raise ConfigError(f"cannot read it: {exc}", source=str(d / "summary.json")) from None
    timeline = _read_json(d / "timeline.json")
    cfg_path = d / "config.json"
    config = _read_json(cfg_path) if cfg_path.exists() else {}
    thresholds = [(t["metric"], t["expression"]) for t in summary["scfleet"]["thresholds"]]
    data = RunData(d, summary, timeline, config, thresholds)
    data.rows, data.assessments = stage_table(_recorder(d, config), timeline, thresholds)
    return data


def build_reports(run_dir: str | Path) -> dict[str, Path]:
    """(Re)write the report files and the stage table (summary.json, summary.txt)."""
    from simulator import exports, report_html, stages

    data = load_run(run_dir)
    d = data.run_dir
    data.summary["scfleet"]["stages"] = stages.to_json(data.rows, data.assessments)
    (d / "summary.json").write_text(json.dumps(data.summary, indent=2, default=str))
    txt = d / "summary.txt"
    if txt.exists():
        head = txt.read_text().rstrip("\n").split(STAGES_MARK)[0]
        if data.rows:
            head += (
                STAGES_MARK + stages.render_text(data.rows, data.assessments)[len("  STAGES\n") :]
            )
        txt.write_text(head + "\n")
    state = data.summary["scfleet"].get("state", {})
    started = float(state.get("startedAt", 0.0))
    out = {name: d / name for name in REPORT_FILES}
    out["report.html"].write_text(report_html.render(data))
    out["timeline-1s.ndjson"].write_text(exports.to_ndjson(data.timeline, started, data.thresholds))
    out["timeline.csv"].write_text(exports.to_csv(data.timeline, started))
    out["junit.xml"].write_text(
        exports.to_junit(
            data.summary["scfleet"]["thresholds"],
            float(state.get("testRunDurationMs", 0.0)) / 1000,
            started,
        )
    )
    out["handle-summary.json"].write_text(
        json.dumps(exports.handle_summary(data.summary), indent=2, default=str)
    )
    return out


def report_command(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / "summary.json").exists() and (run_dir / "run.ndjson").exists():
        from simulator.output import rebuild_run  # a killed run: rebuild from its stream

        paths = rebuild_run(run_dir)
    else:
        paths = build_reports(args.run_dir)
    for p in paths.values():
        sys.stdout.write(f"  wrote {p}\n")
    return EXIT_OK


# --------------------------------------------------------------------------- compare


@dataclass
class Change:
    what: str
    a: str
    b: str
    verdict: str  # "better" | "worse" | "same" | "changed"


def _headline(data: RunData) -> dict[str, float | None]:
    from simulator.summary import figures

    return {
        "p95": figures(data.summary, "http_req_duration").get("p(95)"),
        "error_rate": figures(data.summary, "http_req_failed").get("value"),
        "throughput": figures(data.summary, "http_reqs").get("rate"),
    }


def _knee_offered(data: RunData, scenario: str) -> tuple[float | None, str]:
    a = next((x for x in data.assessments if x.scenario == scenario), None)
    if a is None:
        return None, "-"
    row = next((r for r in data.rows if r.scenario == scenario and r.index == a.knee), None)
    return (row.target_to if row else 0.0), a.knee_label


def _judge_number(a: float | None, b: float | None, lower_is_better: bool, tol: float) -> str:
    if a is None or b is None:
        return "changed" if (a is None) != (b is None) else "same"
    if abs(b - a) <= tol * max(abs(a), abs(b), 1e-12):
        return "same"
    return "better" if (b < a) == lower_is_better else "worse"


def compare(a: RunData, b: RunData, tol: float = 0.05) -> list[Change]:
    """Headline figures and, per scenario both runs share, the knee and verdict.

    Differences within ``tol`` (relative) count as the same: run-to-run noise.
    """
    ha, hb = _headline(a), _headline(b)
    out = [
        Change(
            "p95 latency",
            _ms(ha["p95"]),
            _ms(hb["p95"]),
            _judge_number(ha["p95"], hb["p95"], True, tol),
        ),
        Change(
            "error rate",
            _pct(ha["error_rate"]),
            _pct(hb["error_rate"]),
            _judge_number(ha["error_rate"], hb["error_rate"], True, tol)
            if max(ha["error_rate"] or 0, hb["error_rate"] or 0) >= 1e-4
            else "same",
        ),
        Change(
            "throughput",
            _rate(ha["throughput"]),
            _rate(hb["throughput"]),
            _judge_number(ha["throughput"], hb["throughput"], False, tol),
        ),
    ]
    names_b = {x.scenario for x in b.assessments}
    rank = {"cliff": 0, "graceful": 1, "held": 2}
    for x in a.assessments:
        if x.scenario not in names_b:
            continue
        y = next(v for v in b.assessments if v.scenario == x.scenario)
        ka, la = _knee_offered(a, x.scenario)
        kb, lb = _knee_offered(b, x.scenario)
        out.append(Change(f"knee ({x.scenario})", la, lb, _judge_number(ka, kb, False, 1e-9)))
        ra, rb = rank.get(x.verdict), rank.get(y.verdict)
        v = "same" if x.verdict == y.verdict else "changed"
        if ra is not None and rb is not None and ra != rb:
            v = "better" if rb > ra else "worse"
        out.append(Change(f"verdict ({x.scenario})", x.verdict, y.verdict, v))
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}/s"


def render_compare(changes: Sequence[Change], a: Path, b: Path) -> str:
    marks = {"better": "▲ better", "worse": "▼ worse", "same": "= same", "changed": "~ changed"}
    wa = max(len(c.what) for c in changes)
    va = max(len(c.a) for c in changes)
    vb = max(len(c.b) for c in changes)
    lines = [f"  A: {a}", f"  B: {b}", ""]
    for c in changes:
        lines.append(f"  {c.what.ljust(wa)}  {c.a.rjust(va)} → {c.b.rjust(vb)}  {marks[c.verdict]}")
    worse = [c.what for c in changes if c.verdict == "worse"]
    better = [c.what for c in changes if c.verdict == "better"]
    lines.append("")
    lines.append(
        f"  B vs A: {len(better)} better ({', '.join(better) or '-'}), "
        f"{len(worse)} worse ({', '.join(worse) or '-'})"
    )
    return "\n".join(lines) + "\n"


def compare_command(args: argparse.Namespace) -> int:
    a, b = load_run(args.run_a), load_run(args.run_b)
    sys.stdout.write(render_compare(compare(a, b), a.run_dir, b.run_dir))
    return EXIT_OK
