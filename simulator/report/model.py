"""The run folder, loaded: what every report file, ``scfleet compare`` and the library API
read (summary.json, timeline.json, stages.json, config.json)."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from scfleet_core.errors import ConfigError
from simulator.metrics import Histogram
from simulator.metrics.histogram import bucket_bounds
from simulator.report.stages import Assessment, StageRow, stage_table
from simulator.run.stage_recorder import StageRecorder, after_schedule, last_stage, locate

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


#: The most of summary.json, stages.json or config.json ``scfleet report``/``compare`` read: a
#: real one is at most a few MB (the config sizes them: scenarios, stages, thresholds); before,
#: a link to /dev/zero was read until memory ran out
MAX_SUMMARY_BYTES = 64 << 20
#: The most of timeline.json (and metrics.json) they read: it grows with the run, one point a
#: second of ~0.2 KB plus ~0.35 KB a scenario, so a week-long run (the longest a config allows)
#: of one scenario writes ~330 MB and of four ~1 GB
MAX_TIMELINE_BYTES = 1 << 30


def open_run_file(path: Path) -> BinaryIO:
    """A run-folder file opened to be read, the one way ``report``/``compare`` open them: a named
    pipe (FIFO) in its place is one line naming it (exit 104), at once. A plain open() of a FIFO
    no process writes waits for a writer, for ever (``scfleet report`` hung on a summary.json,
    a timeline.json or a run.ndjson made a FIFO); opened without waiting, as ``run`` opens a
    ``--summary-export`` (scfleet/run_cli.py ``_open_export``), it is seen for what it is."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise ConfigError("a named pipe (FIFO): not a file scfleet writes", source=str(path))
        os.set_blocking(fd, True)  # a device in its place (/dev/zero) is read as before
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_json(path: Path, limit: int) -> Any:
    """A run-folder JSON file of at most ``limit`` bytes, the one reader of them all: a regular
    file past it is refused by its size, unread (a huge sparse file), else read to its size,
    no further (``read(limit + 1)`` set aside the whole limit for a file of a few KB); a device
    or pipe in its place (a link to /dev/zero), which has no size, once more than the limit (at
    most MAX_SUMMARY_BYTES) is read. Either is one line naming the file (exit 104)."""
    try:
        with open_run_file(path) as fh:
            st = os.fstat(fh.fileno())
            regular = stat.S_ISREG(st.st_mode)
            if not regular:
                limit = min(limit, MAX_SUMMARY_BYTES)
            raw = b"" if st.st_size > limit else fh.read(st.st_size if regular else limit + 1)
        if st.st_size > limit or len(raw) > limit:
            raise ConfigError(
                f"larger than {limit >> 20} MiB: not a file scfleet writes", source=str(path)
            )
        return json.loads(raw.decode())
    except FileNotFoundError:
        raise ConfigError("not a run folder (missing file)", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc}", source=str(path)) from None
    except RecursionError:  # json's decoder recurses once per level: '[' * 100000
        raise ConfigError("invalid JSON: nested too deeply", source=str(path)) from None
    except OSError as exc:  # a folder in its place: before, compare's traceback
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None


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
        return StageRecorder.from_dict(_read_shaped(path, dict, MAX_SUMMARY_BYTES))
    return StageRecorder({}) if cfg is None else StageRecorder.for_config(cfg)


def _stop_left_out(
    rec: StageRecorder, timeline: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[int, int]]:
    """Per scenario, its last stage's index and the requests that finished in its graceful stop and are missing from its
    last stage's histogram: a folder written before 913748a, whose recorder gave the stop's
    ticks to no stage (since then the last stage takes them, as the table counts them)."""
    out: dict[str, tuple[int, int]] = {}
    for name, windows in rec.windows.items():
        last = last_stage(windows)
        if last is None:
            continue
        mine = [p for p in timeline if name in p.get("scenarios", {})]
        late = sum(
            p["scenarios"][name]["requests"]
            for p in mine
            if after_schedule(last, p["t"], p["span"])
        )
        inside = sum(
            p["scenarios"][name]["requests"]
            for p in mine
            if locate([last], p["t"], p["span"]) is not None
        )
        hist = rec.hists.get((name, last.index))
        if late and (hist.count if hist is not None else 0) == inside:
            out[name] = (last.index, late)
    return out


def _durations(run_dir: Path) -> dict[str, Histogram] | None:
    """Each scenario's whole ``http_req_duration`` from metrics.json; None without one."""
    from simulator.metrics import Registry, Trend

    path = run_dir / "metrics.json"
    if not path.exists():
        return None
    registry = Registry.from_dict(_read_json(path, MAX_TIMELINE_BYTES))
    out: dict[str, Histogram] = {}
    for (metric, tags), s in registry.series.items():
        scenario = dict(tags).get("scenario")
        if metric == "http_req_duration" and scenario is not None and isinstance(s, Trend):
            out.setdefault(scenario, Histogram()).merge(s.hist)
    return out


def _less(whole: Histogram, parts: Sequence[Histogram]) -> Histogram | None:
    """``whole`` without ``parts`` (bucket by bucket); None when they are not part of it."""
    counts = dict(whole.counts)
    for h in parts:
        for idx, n in h.counts.items():
            counts[idx] = counts.get(idx, 0) - n
    counts = {i: n for i, n in counts.items() if n}
    if any(n < 0 for n in counts.values()) or not counts:
        return None
    rest = Histogram()
    rest.counts = counts
    rest.count = sum(counts.values())
    rest.total = whole.total - sum(h.total for h in parts)
    top = max((h.max for h in parts if h.count), default=0)
    # the whole's max is exact and the rest's when no part reached it; else its bucket's top
    rest.max = whole.max if whole.max > top else min(whole.max, bucket_bounds(max(counts))[1])
    rest.min = max(whole.min, bucket_bounds(min(counts))[0])
    return rest


def complete_old_stages(
    rec: StageRecorder, timeline: Sequence[Mapping[str, Any]], run_dir: Path
) -> None:
    """Give an old folder's last stages the latencies of the requests that finished in the
    graceful stop, which the stage table counts there: the scenario's whole
    ``http_req_duration`` (metrics.json) less its stages' histograms, exact. Where that does
    not add up (no metrics.json, a hand-edited folder) the stage's histogram is dropped, so its
    percentiles come from its ticks, the stop's included, marked approximate: never one
    request set's percentiles beside another's count."""
    left_out = _stop_left_out(rec, timeline)
    if not left_out:
        return
    whole = _durations(run_dir) or {}
    for name, (index, late) in left_out.items():
        parts = [h for (s, _i), h in rec.hists.items() if s == name]
        rest = _less(whole[name], parts) if name in whole else None
        if rest is None or rest.count != late:
            rec.hists.pop((name, index), None)
            continue
        rec.hists.setdefault((name, index), Histogram()).merge(rest)


def _device_rows(path: Path) -> int | None:
    """Rows of devices.csv (its header aside); None when the folder has none."""
    try:
        with open_run_file(path) as raw, io.TextIOWrapper(raw, newline="") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    except csv.Error as exc:  # a field past csv's 128 KB limit: not a row scfleet writes
        raise ConfigError(f"not as scfleet writes it ({exc})", source=str(path)) from None


def _read_shaped(path: Path, shape: type[dict[str, Any]] | type[list[Any]], limit: int) -> Any:
    """A run-folder JSON file whose top level is a table (``dict``) or a list of tables, of at
    most ``limit`` bytes."""
    doc = _read_json(path, limit)
    if not isinstance(doc, shape) or (shape is list and not all(isinstance(x, dict) for x in doc)):
        want = "a list of tables" if shape is list else "a table"
        raise ConfigError(f"not as scfleet writes it (expected {want})", source=str(path))
    return doc


def load_run(run_dir: str | Path) -> RunData:
    """The model of a run folder read off disk. A file that parses but is not shaped as scfleet
    writes it (hand-edited, another tool's) is a :class:`ConfigError` naming it or the folder:
    before, ``scfleet report``/``compare`` ended in a KeyError or TypeError traceback."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ConfigError("no such run folder", source=str(d))
    try:
        return _load_run(d)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"cannot read it: its files are not as scfleet writes them ({type(exc).__name__}: "
            f"{exc})",
            source=str(d),
        ) from None


def read_summary(path: Path) -> dict[str, Any]:
    """A run folder's summary.json in today's shape, the one reader of it (``scfleet report``/
    ``compare``, the pytest plugin's ``FleetRun.summary``): capped, and a format this scfleet
    does not know (``scfleet.format``) is one line naming it, not its figures read as today's
    (:func:`~simulator.report.summary.upgrade_summary`)."""
    from simulator.report.summary import upgrade_summary

    try:
        return upgrade_summary(_read_shaped(path, dict, MAX_SUMMARY_BYTES))
    except ValueError as exc:
        raise ConfigError(f"cannot read it: {exc}", source=str(path)) from None


def _load_run(d: Path) -> RunData:
    summary = read_summary(d / "summary.json")
    timeline = _read_shaped(d / "timeline.json", list, MAX_TIMELINE_BYTES)
    if any(not {"t", "span", "scenarios"} <= point.keys() for point in timeline):
        raise ConfigError(
            "not as scfleet writes it (a point without t, span or scenarios)",
            source=str(d / "timeline.json"),
        )
    cfg_path = d / "config.json"
    config = _read_shaped(cfg_path, dict, MAX_SUMMARY_BYTES) if cfg_path.exists() else {}
    from simulator.report.summary import describe_scenarios

    cfg = _run_config(config)
    recorder = _recorder(d, cfg)
    complete_old_stages(recorder, timeline, d)
    return model_of(
        d,
        summary,
        timeline,
        config,
        recorder,
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
    duration = float(summary["scfleet"]["state"].get("testRunDurationMs", 0.0)) / 1000
    data.rows, data.assessments = stage_table(recorder, timeline, thresholds, duration or None)
    summary["scfleet"]["stages"] = to_json(data.rows, data.assessments)
    data.text = text_of(summary, scenarios, devices)
    return data
