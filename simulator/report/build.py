"""Write the report files of a run folder from its loaded model (:mod:`simulator.report.model`)."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.report.model import load_run

#: Files ``build_reports`` (re)writes besides the ``stages`` key of summary.json.
REPORT_FILES = (
    "report.html",
    "timeline-1s.ndjson",
    "timeline.csv",
    "junit.xml",
    "handle-summary.json",
)
STAGES_MARK = "\n\n  STAGES\n"


def build_reports(run_dir: str | Path) -> dict[str, Path]:
    """(Re)write the report files and the stage table (summary.json, summary.txt)."""
    from simulator.report import exports, stages
    from simulator.report import html as report_html

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
