"""The run folder, loaded: what every report file, ``scfleet compare`` and the library API
read (summary.json, timeline.json, stages.json, config.json)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scfleet_core.errors import ConfigError
from simulator.report.stages import Assessment, StageRow, stage_table
from simulator.run.stage_recorder import StageRecorder

if TYPE_CHECKING:
    from simulator.config import RunConfig


@dataclass
class RunData:
    """A run folder, loaded: what every report file is made from."""

    run_dir: Path
    summary: dict[str, Any]
    timeline: list[dict[str, Any]]
    config: dict[str, Any]
    thresholds: list[tuple[str, str]]
    rows: list[StageRow] = field(default_factory=list)
    assessments: list[Assessment] = field(default_factory=list)
    #: summary.txt without the stage table (:func:`simulator.report.summary.text_of`)
    text: str = ""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("not a run folder (missing file)", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", source=str(path)) from None


def _run_config(config: Mapping[str, Any]) -> RunConfig | None:
    """config.json's configuration, parsed and time-scaled; None for an old or hand-edited
    folder whose config no longer loads."""
    from simulator.config import parse_config, scale_times

    try:
        cfg = parse_config(dict(config.get("config", {})), str(config.get("source", "<run>")))
        return scale_times(cfg, float(config.get("time_scale", 1.0)))
    except Exception:  # noqa: BLE001 - an old or hand-edited folder
        return None


def _recorder(run_dir: Path, cfg: RunConfig | None) -> StageRecorder:
    """Per-stage windows and histograms; rebuilt from the config when stages.json is absent
    (then percentiles are request-weighted tick values, marked approximate)."""
    path = run_dir / "stages.json"
    if path.exists():
        return StageRecorder.from_dict(_read_json(path))
    return StageRecorder({}) if cfg is None else StageRecorder.for_config(cfg)


def _device_rows(path: Path) -> int | None:
    """Rows of devices.csv (its header aside); None when the folder has none."""
    try:
        with open(path, newline="") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    except FileNotFoundError:
        return None


def load_run(run_dir: str | Path) -> RunData:
    d = Path(run_dir)
    if not d.is_dir():
        raise ConfigError("no such run folder", source=str(d))
    from simulator.report.summary import upgrade_summary

    try:
        summary = upgrade_summary(_read_json(d / "summary.json"))
    except ValueError as exc:
        raise ConfigError(f"cannot read it: {exc}", source=str(d / "summary.json")) from None
    timeline = _read_json(d / "timeline.json")
    cfg_path = d / "config.json"
    config = _read_json(cfg_path) if cfg_path.exists() else {}
    from simulator.report.summary import describe_scenarios

    cfg = _run_config(config)
    return model_of(
        d,
        summary,
        timeline,
        config,
        _recorder(d, cfg),
        describe_scenarios(cfg) if cfg is not None else [],
        _device_rows(d / "devices.csv"),
    )


def model_of(
    run_dir: Path,
    summary: dict[str, Any],
    timeline: list[dict[str, Any]],
    config: dict[str, Any],
    recorder: StageRecorder,
    scenarios: Sequence[str],
    devices: int | None,
) -> RunData:
    """The model from its parts, the stage table and the text summary worked out once: from a
    finished run's result in memory (``write_run``) or from a folder read off disk
    (:func:`load_run`). ``scenarios``/``devices``: as :func:`~simulator.report.summary.text_of`."""
    from simulator.report.stages import to_json
    from simulator.report.summary import text_of

    thresholds = [(t["metric"], t["expression"]) for t in summary["scfleet"]["thresholds"]]
    data = RunData(run_dir, summary, timeline, config, thresholds)
    data.rows, data.assessments = stage_table(recorder, timeline, thresholds)
    summary["scfleet"]["stages"] = to_json(data.rows, data.assessments)
    data.text = text_of(summary, scenarios, devices)
    return data
