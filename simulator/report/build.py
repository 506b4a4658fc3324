"""Write the report files of a run from its run-folder model (:mod:`simulator.report.model`):
built once, from memory, at the end of a run (``write_run``); or for ``scfleet report RUN_DIR``
from the folder's files (a newer scfleet, deleted report files, an old folder)."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.report.model import RunData, load_run

#: Report files written from the model besides summary.json and summary.txt.
REPORT_FILES = (
    "report.html",
    "timeline-1s.ndjson",
    "timeline.csv",
    "junit.xml",
    "handle-summary.json",
)


def summary_text(data: RunData) -> str:
    """summary.txt: the text summary, then the stage table when there is one."""
    from simulator.report import stages

    text = data.text
    if data.rows:
        text += "\n\n" + stages.render_text(data.rows, data.assessments)
    return text + "\n"


def write_whole(path: Path, text: str) -> None:
    """``path`` holds ``text`` whole, or is left as it was: written beside it, then renamed
    over it. Written in place, a disk that filled mid-write left a stump (a 0-byte
    report.html, a cut summary.json) where a whole file, or the one before, had been."""
    part = path.with_name(path.name + ".part")
    try:
        part.write_text(text)
        part.replace(path)
    except OSError as exc:  # a write's error names no file (EFBIG, ENOSPC): this one
        part.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def write_summary_files(data: RunData) -> dict[str, Path]:
    """summary.json (with its ``stages`` key) and summary.txt, from the model."""
    out = {name: data.run_dir / name for name in ("summary.json", "summary.txt")}
    write_whole(out["summary.json"], json.dumps(data.summary, indent=2, default=str))
    write_whole(out["summary.txt"], summary_text(data))
    return out


def write_report_files(data: RunData) -> dict[str, Path]:
    """report.html and the exports, from the model."""
    from simulator.report import exports
    from simulator.report import html as report_html

    d = data.run_dir
    state = data.summary["scfleet"].get("state", {})
    started = float(state.get("startedAt", 0.0))
    out = {name: d / name for name in REPORT_FILES}
    write_whole(out["report.html"], report_html.render(data))
    write_whole(
        out["timeline-1s.ndjson"], exports.to_ndjson(data.timeline, started, data.thresholds)
    )
    write_whole(out["timeline.csv"], exports.to_csv(data.timeline, started))
    write_whole(
        out["junit.xml"],
        exports.to_junit(
            data.summary["scfleet"]["thresholds"],
            float(state.get("testRunDurationMs", 0.0)) / 1000,
            started,
        ),
    )
    write_whole(
        out["handle-summary.json"],
        json.dumps(exports.handle_summary(data.summary), indent=2, default=str),
    )
    return out


def build_reports(run_dir: str | Path) -> dict[str, Path]:
    """``scfleet report``: the model built once from the folder's files, then summary.json,
    summary.txt and the report files written from it, as at the end of a run."""
    data = load_run(run_dir)
    return {**write_summary_files(data), **write_report_files(data)}
