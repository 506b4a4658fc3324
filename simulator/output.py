"""The run folder: everything a run measured, written even when the run was interrupted.

| file | holds |
| --- | --- |
| ``summary.json`` | k6's ``--summary-export`` document; scfleet's additions under ``scfleet`` |
| ``summary.txt`` | the text summary as printed |
| ``config.json`` | the configuration as run (after ``--set``, ``--time-scale``, ``--target``) |
| ``metrics.json`` | every series with its histogram, mergeable across runs/processes |
| ``timeline.json`` | one point per tick: per-scenario rates, latency percentiles, samplers |
| ``devices.csv`` | per device: requests, ok, failed, next sequence, bytes acknowledged |
| ``stages.json`` | stage windows and per-stage latency histograms (for ``scfleet report``) |
| ``report.html`` | self-contained report: verdict, thresholds, stage table, plots |
| ``timeline.ndjson`` | the timeline in k6's ``--out json`` point format |
| ``timeline.csv`` | the timeline, one row per tick per scenario |
| ``junit.xml`` | one test case per threshold, for CI |
| ``handle-summary.json`` | k6's ``handleSummary(data)`` object, for k6 report tools |

The stage table also goes into ``summary.json`` (``scfleet.stages``) and ``summary.txt``.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from simulator.errors import ConfigError
from simulator.runner import RunResult
from simulator.secrets import Secret
from simulator.summary import render_text, summary_dict


def default_run_dir(config_path: str, base: str | Path = "runs") -> Path:
    stem = Path(config_path).stem or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{stamp}-{stem}"
    n = 1
    while path.exists():
        n += 1
        path = Path(base) / f"{stamp}-{stem}-{n}"
    return path


#: Files whose presence marks a folder as a run folder (``--overwrite`` only replaces those).
RUN_MARKERS = ("config.json", "summary.json", "run.ndjson")


def claim_run_dir(path: Path, *, overwrite: bool, key: str = "--out") -> bool:
    """Create the run folder before anything is contacted; True if this call created it.

    Refuses (one-line :class:`ConfigError` naming ``key``) a path that is a file, cannot be
    created, or is a non-empty folder — unless it is a run folder and ``overwrite`` is given.
    """
    import shutil

    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise ConfigError(f"{path} exists and is not a folder", key=key)
        try:
            entries = list(path.iterdir())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}", key=key) from None
        if entries:
            is_run = any((path / m).exists() for m in RUN_MARKERS)
            if not is_run:
                raise ConfigError(f"{path} is not empty and not a run folder; refusing", key=key)
            if not overwrite:
                raise ConfigError(
                    f"{path} already holds a run; pass --overwrite to replace it", key=key
                )
            try:
                shutil.rmtree(path)
            except OSError as exc:
                raise ConfigError(f"cannot remove {path}: {exc.strerror}", key=key) from None
        else:
            return False
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}", key=key) from None
    return True


def _jsonable(value: Any) -> Any:
    if isinstance(value, Secret):
        return "***"
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_run(result: RunResult, run_dir: Path, effective: dict[str, Any]) -> dict[str, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: run_dir / name
        for name in (
            "summary.json",
            "summary.txt",
            "config.json",
            "metrics.json",
            "timeline.json",
            "devices.csv",
        )
    }
    paths["summary.json"].write_text(json.dumps(summary_dict(result), indent=2, default=str))
    paths["summary.txt"].write_text(render_text(result) + "\n")
    paths["config.json"].write_text(json.dumps(_jsonable(effective), indent=2, default=str))
    paths["metrics.json"].write_text(json.dumps(result.registry.to_dict()))
    paths["timeline.json"].write_text(json.dumps(result.timeline))
    with open(paths["devices.csv"], "w", newline="") as fh:
        fields = [
            "scenario",
            "kind",
            "device_id",
            "requests",
            "ok",
            "failed",
            "next_sequence",
            "bytes_ok",
            "logins",
        ]
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(result.devices)
    recorder = result.extras.get("stage_recorder")
    if recorder is not None:
        paths["stages.json"] = run_dir / "stages.json"
        paths["stages.json"].write_text(json.dumps(recorder.to_dict()))
    paths.update(write_reports(run_dir))
    return paths


def write_reports(run_dir: Path) -> dict[str, Path]:
    """Report files derived from the core files; a failure here never loses the results."""
    from simulator.report_cli import build_reports

    try:
        return build_reports(run_dir)
    except Exception as exc:  # noqa: BLE001 - the measured data is already on disk
        sys.stderr.write(
            f"scfleet: report files not written ({type(exc).__name__}: {exc}); "
            f"retry with: scfleet report {run_dir}\n"
        )
        return {}
