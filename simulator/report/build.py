"""Write the report files of a run from its run-folder model (:mod:`simulator.report.model`):
once, from memory, at the end of a run (``write_run``); or for ``scfleet report RUN_DIR`` from
the folder loaded off disk (a newer scfleet, deleted report files, an old folder)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.report.model import RunData, load_run

#: Files ``build_reports`` (re)writes besides the ``stages`` key of summary.json.
REPORT_FILES = (
    "report.html",
    "timeline-1s.ndjson",
    "timeline.csv",
    "junit.xml",
    "handle-summary.json",
)
STAGES_MARK = "\n\n  STAGES\n"


def with_stage_table(text: str, rows: Sequence[Any], assessments: Sequence[Any]) -> str:
    """summary.txt: the text summary with the stage table at its end (replacing any there)."""
    from simulator.report import stages

    head = text.rstrip("\n").split(STAGES_MARK)[0]
    if rows:
        head += STAGES_MARK + stages.render_text(rows, assessments)[len("  STAGES\n") :]
    return head + "\n"


def write_report_files(data: RunData) -> dict[str, Path]:
    """report.html and the exports, from the model."""
    from simulator.report import exports
    from simulator.report import html as report_html

    d = data.run_dir
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


def build_reports(run_dir: str | Path) -> dict[str, Path]:
    """``scfleet report``: (re)write the report files and the stage table (summary.json,
    summary.txt) of a folder on disk."""
    from simulator.report import stages

    data = load_run(run_dir)
    d = data.run_dir
    data.summary["scfleet"]["stages"] = stages.to_json(data.rows, data.assessments)
    (d / "summary.json").write_text(json.dumps(data.summary, indent=2, default=str))
    txt = d / "summary.txt"
    if txt.exists():
        txt.write_text(with_stage_table(txt.read_text(), data.rows, data.assessments))
    return write_report_files(data)
