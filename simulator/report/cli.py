"""``scfleet report RUN_DIR`` and ``scfleet compare RUN_A RUN_B``.

Every report file is derived from the run folder alone (summary.json, timeline.json,
stages.json, config.json), so a report can be rebuilt after the fact — with a newer scfleet,
or after deleting the big files — and two runs can be compared without re-running either.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scfleet_core.cli import Subparsers
from scfleet_core.errors import EXIT_OK, EXIT_THRESHOLDS_FAILED, EXIT_USAGE, ConfigError
from simulator.report.build import REPORT_FILES as REPORT_FILES
from simulator.report.build import build_reports as build_reports
from simulator.report.model import RunData as RunData
from simulator.report.model import load_run as load_run


def register(sub: Subparsers) -> None:
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
        description="Compare two run folders: p95, error rate, throughput, knee, verdict. "
        "With --fail-on it is a regression gate: exit 0 when every rule holds, 99 when NEW "
        "is worse than BASE beyond a margin (or lacks a figure a rule names), 2 for a bad "
        "spec, 104 for an unreadable run folder.",
    )
    c.add_argument("run_a", metavar="BASE", help="the baseline run folder")
    c.add_argument("run_b", metavar="NEW", help="the run to compare with it")
    c.add_argument(
        "--fail-on",
        metavar="SPEC",
        type=_fail_on,
        action="append",  # a second --fail-on adds its rules (it replaced the first, unsaid)
        help="comma-separated rules FIGURE(+|-)N(%%|pp|ms), e.g. 'p(95)+10%%,error_rate+0.5pp,"
        "throughput-5%%': '+' fails when NEW rises past BASE by more than the margin, '-' when "
        "it falls; %% is relative to BASE, pp are percentage points (rates), ms absolute; "
        "repeatable (every rule of every one is judged)",
    )
    c.add_argument(
        "--junit", metavar="FILE", help="also write the gate's rules as JUnit XML to FILE"
    )
    c.set_defaults(func=compare_command)


def report_command(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    try:
        if not (run_dir / "summary.json").exists() and (run_dir / "run.ndjson").exists():
            from simulator.report.output import rebuild_run  # a killed run: from its stream

            paths = rebuild_run(run_dir)
        else:
            paths = build_reports(args.run_dir)
    except OSError as exc:  # a full disk, a read-only folder: before, a traceback
        raise ConfigError(
            f"cannot write: {exc.strerror or exc}", source=str(exc.filename or run_dir)
        ) from None
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
    from simulator.report.summary import figures

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


def _fail_on(text: str) -> tuple[Any, ...]:
    """argparse type of ``--fail-on``: a bad spec is a one-line usage error (exit 2)."""
    from simulator.report.gate import parse_spec

    try:
        return parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def compare_command(args: argparse.Namespace) -> int:
    from simulator.report import gate

    a, b = load_run(args.run_a), load_run(args.run_b)
    warning = gate.difference_warning(gate.config_differences(a.config, b.config))
    if warning:
        sys.stderr.write(f"scfleet: {warning}\n")
    sys.stdout.write(render_compare(compare(a, b), a.run_dir, b.run_dir))
    rules = tuple(r for spec in args.fail_on or () for r in spec)
    if not rules:
        if args.junit:
            raise ConfigError("--junit needs --fail-on (the rules are its test cases)")
        return EXIT_OK
    try:
        gate.check_units(rules, a.summary, b.summary)
    except ValueError as exc:  # as a bad spec's own line (argparse's), exit 2
        sys.stderr.write(f"scfleet compare: error: argument --fail-on: {exc}\n")
        return EXIT_USAGE
    outcomes = gate.judge(rules, a.summary, b.summary)
    sys.stdout.write("\n" + gate.render(outcomes))
    if args.junit:
        junit = gate.to_junit(outcomes, str(a.run_dir), str(b.run_dir), warning)
        try:
            Path(args.junit).write_text(junit)
        except OSError as exc:
            raise ConfigError(f"cannot write it: {exc.strerror}", source=args.junit) from None
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_THRESHOLDS_FAILED
