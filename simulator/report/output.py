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
| ``timeline-1s.ndjson`` | the per-second timeline as k6-shaped lines (not per sample) |
| ``timeline.csv`` | the timeline, one row per tick per scenario |
| ``junit.xml`` | one test case per threshold, for CI |
| ``run.ndjson`` | the crash-safe stream, appended each second (:class:`RunStream`) |
| ``handle-summary.json`` | k6's ``handleSummary(data)`` object, for k6 report tools |

The stage table also goes into ``summary.json`` (``scfleet.stages``) and ``summary.txt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scfleet_core.errors import ConfigError
from scfleet_core.secrets import Secret
from simulator.report.build import write_report_files, write_summary_files
from simulator.report.model import RunData, model_of, open_run_file
from simulator.report.summary import describe_scenarios, render_text, summary_dict
from simulator.run.device_row import write_csv
from simulator.run.runner import RunResult
from simulator.run.stage_recorder import StageRecorder

if TYPE_CHECKING:
    from simulator.metrics import Registry
    from simulator.run.runner import Environment


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

#: Everything a run folder may hold: what ``scfleet run``/``report`` write in it (a report
#: file's ``.part`` is one being replaced). ``--overwrite`` replaces a folder holding nothing
#: else: before, one marker was enough, and ``--out ~/project --overwrite`` removed a project
#: that had a config.json, src/ and all.
RUN_ENTRIES = frozenset(
    (
        *RUN_MARKERS,
        "summary.txt",
        "metrics.json",
        "timeline.json",
        "devices.csv",
        "stages.json",
        "report.html",
        "timeline-1s.ndjson",
        "timeline.csv",
        "junit.xml",
        "handle-summary.json",
        "server",
        ".worker-parts",
    )
)


def _foreign(entries: list[Path]) -> list[str]:
    """The entries of a folder that no run writes."""
    return sorted(
        e.name
        for e in entries
        if e.name not in RUN_ENTRIES and e.name.removesuffix(".part") not in RUN_ENTRIES
    )


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
            foreign = _foreign(entries)
            if foreign:
                more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
                raise ConfigError(
                    f"{path} holds {foreign[0]!r}{more}, which no run writes: not a run folder "
                    "to replace; refusing",
                    key=key,
                )
            if not overwrite:
                raise ConfigError(
                    f"{path} already holds a run; pass --overwrite to replace it", key=key
                )
            try:
                shutil.rmtree(path)
            except OSError as exc:
                raise ConfigError(f"cannot remove {path}: {exc.strerror}", key=key) from None
        else:
            _check_writable(path, key)  # an empty folder is taken as it is: can it be written?
            return False
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}", key=key) from None
    return True


def _check_writable(path: Path, key: str) -> None:
    """A file can be made in ``path``: before, an empty folder on a read-only mount was taken
    and the run died at its first write in a traceback, after the target was contacted."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write in {path}: {exc.strerror or exc}", key=key) from None


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
    """Write a finished run's folder (:func:`write_run_model`); the files written, by name."""
    return write_run_model(result, run_dir, effective)[0]


def write_run_model(
    result: RunResult, run_dir: Path, effective: dict[str, Any]
) -> tuple[dict[str, Path], RunData | None]:
    """Write a finished run's folder; the files by name and the model they were written from
    (None when the report could not be built: ``scfleet report`` retries). The run-folder model (:mod:`simulator.report.model`) is
    built once in memory from the result — summary, timeline, config, the stage table — and
    every file is written from it; nothing is read back. The measured data goes first, so a
    report that cannot be built never loses it."""
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
    # JSON-shaped copies of what the files hold: the model sees exactly what a later
    # ``scfleet report`` would read from them, so both write the same bytes.
    summary = json.loads(json.dumps(summary_dict(result), default=str))
    config_text = json.dumps(_jsonable(effective), indent=2, default=str)
    timeline_text = json.dumps(result.timeline)
    paths["config.json"].write_text(config_text)
    paths["metrics.json"].write_text(json.dumps(result.registry.to_dict()))
    paths["timeline.json"].write_text(timeline_text)
    with open(paths["devices.csv"], "w", newline="") as fh:
        write_csv(fh, result.devices)
    recorder = result.stage_recorder
    if recorder is not None:
        paths["stages.json"] = run_dir / "stages.json"
        paths["stages.json"].write_text(json.dumps(recorder.to_dict()))
    try:
        data: RunData | None = _model(result, run_dir, summary, timeline_text, config_text)
    except Exception as exc:  # noqa: BLE001 - the measured data is written regardless
        _reports_not_written(run_dir, exc)
        data = None
    if data is None:
        summary.get("scfleet", {}).pop("stages", None)
        paths["summary.json"].write_text(json.dumps(summary, indent=2, default=str))
        with contextlib.suppress(Exception):  # the measured data is on disk already
            paths["summary.txt"].write_text(render_text(result) + "\n")
        return paths, None
    paths.update(write_summary_files(data))
    try:
        paths.update(write_report_files(data))
    except Exception as exc:  # noqa: BLE001 - the measured data is already on disk
        _reports_not_written(run_dir, exc)
    return paths, data


def _model(
    result: RunResult, run_dir: Path, summary: dict[str, Any], timeline_text: str, config_text: str
) -> RunData:
    recorder = result.stage_recorder
    return model_of(
        run_dir,
        summary,
        json.loads(timeline_text),
        json.loads(config_text),
        recorder if recorder is not None else StageRecorder.for_config(result.config),
        describe_scenarios(result.config),
        len(result.devices),
    )


def summary_text_of(result: RunResult) -> str:
    """summary.txt's text, stage table included when it can be built, from memory alone: what
    a run whose folder could not be written prints, so its figures and verdict are not lost."""
    from simulator.report.build import summary_text

    summary = json.loads(json.dumps(summary_dict(result), default=str))
    try:
        return summary_text(_model(result, Path(), summary, json.dumps(result.timeline), "{}"))
    except Exception:  # noqa: BLE001 - the figures without the stage table, then
        return render_text(result) + "\n"


def summary_json_of(result: RunResult) -> str:
    """summary.json's text from memory alone (its stage table when that can be built): what
    ``--summary-export`` gets when no run folder could be written, so the file the user named
    is not silently missing."""
    summary = json.loads(json.dumps(summary_dict(result), default=str))
    try:
        summary = _model(result, Path(), summary, json.dumps(result.timeline), "{}").summary
    except Exception:  # noqa: BLE001 - the figures without the stage table, then
        summary.get("scfleet", {}).pop("stages", None)
    return json.dumps(summary, indent=2, default=str)


def _reports_not_written(run_dir: Path, exc: Exception) -> None:
    sys.stderr.write(
        f"scfleet: report files not written ({type(exc).__name__}: {exc}); "
        f"retry with: scfleet report {run_dir}\n"
    )


# --------------------------------------------------------------------------- crash-safe stream

STREAM = "run.ndjson"
STREAM_FORMAT = 1


class RunStream:
    """``run.ndjson``: the run folder's own crash-safe record, appended and flushed every tick.

    Line 1 is the effective configuration; then one line per tick with the timeline point, the
    registry's *change* since the previous tick (counter and rate deltas, gauge states, HDR
    histogram bucket deltas — so percentiles can be rebuilt exactly) and new notes; a last line
    when the run ends. A run killed at any point (kill -9, OOM) loses at most the last second:
    ``scfleet report RUN_DIR`` rebuilds summary.json/summary.txt/report.html from this file
    (:func:`rebuild_run`). A write error (disk full) stops the stream with a note, not the run.
    """

    def __init__(self, run_dir: Path, effective: dict[str, Any]) -> None:
        self.path = run_dir / STREAM
        self._fh: Any = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run
        self._last: dict[tuple[str, Any], Any] = {}
        self._types: dict[str, str] = {}
        self._notes = 0
        self.ticks = 0
        self.failed: str | None = None
        self._unwritten: list[dict[str, Any]] = []  # points from a write error on
        self._queue: deque[dict[str, Any]] = deque()  # tick lines not yet written
        self._writer: asyncio.Task[None] | None = None
        self._write({"type": "start", "format": STREAM_FORMAT, "effective": _jsonable(effective)})

    def _write(self, obj: dict[str, Any]) -> bool:
        return self._write_text(_dumps(obj))

    def _write_text(self, text: str) -> bool:
        if self._fh is None:
            return False
        try:
            self._fh.write(text + "\n")
            self._fh.flush()
        except (OSError, ValueError) as exc:
            self.failed = f"run stream {self.path} stopped: {getattr(exc, 'strerror', None) or exc}"
            with contextlib.suppress(OSError, ValueError):
                self._fh.close()
            self._fh = None
            return False
        return True

    def tick(self, env: Environment, point: dict[str, Any]) -> None:
        """A :data:`simulator.run.runner.ProgressHook`: one line per timeline point."""
        reg = env.registry
        line: dict[str, Any] = {"type": "tick", "wall": time.time(), "point": point}
        line["registry"] = self._delta(reg)
        notes = env.notes[self._notes :]
        if notes:
            line["notes"] = list(notes)
            self._notes = len(env.notes)
        self._queue.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._drain()
        else:
            if self._writer is None or self._writer.done():
                self._writer = loop.create_task(self._write_gently())
        self.ticks += 1
        if self.failed and self.failed not in env.notes:
            env.notes.append(self.failed)

    def _emit(self, line: dict[str, Any], text: str) -> None:
        if not self._write_text(text):
            self._unwritten.append(line["point"])  # the report still gets it

    async def _write_gently(self) -> None:
        """Write the queued tick lines, encoding one histogram series per loop turn: a
        second's bucket deltas at 8,000 requests/s are ~10,000 buckets, ~5-8 ms of JSON in
        one piece, and every arrival due meanwhile started that late. A line is written
        whole, in order; :meth:`close` writes what is still queued."""
        while self._queue:
            line = self._queue[0]
            parts: list[str] = []
            for _ in _encode_tick(line, parts):
                await asyncio.sleep(0)
            if self._queue and self._queue[0] is line:  # not written by close() meanwhile
                self._queue.popleft()
                self._emit(line, "".join(parts))

    def _drain(self) -> None:
        while self._queue:
            line = self._queue.popleft()
            self._emit(line, encoded_tick(line))

    def _delta(self, reg: Registry) -> dict[str, Any]:
        from simulator.metrics import Counter, Rate, Trend

        reg.flush()
        series = []
        for key, s in list(reg.series.items()):
            name, tags = key
            item: dict[str, Any] = {"metric": name, "tags": dict(tags), "type": s.kind}
            prev = self._last.get(key)
            if isinstance(s, Trend):
                h = s.hist
                if prev is not None and prev[0] == h.count:
                    continue
                pn, pt = prev if prev is not None else (0, 0)
                item["hist"] = {
                    # read into a dict as the line is encoded (a step per series, see
                    # _encode_tick): int keys, which json writes as strings
                    "counts": h.take_fresh(),
                    "count": h.count - pn,
                    "total": h.total - pt,
                    "min": h.min,
                    "max": h.max,
                }
                self._last[key] = (h.count, h.total)
            elif isinstance(s, Rate):
                now = (s.passes, s.total)
                if prev == now:
                    continue
                p = prev or (0, 0)
                item["passes"], item["total"] = now[0] - p[0], now[1] - p[1]
                self._last[key] = now
            elif isinstance(s, Counter):
                if prev == s.value:
                    continue
                item["value"] = s.value - (prev or 0)
                self._last[key] = s.value
            else:
                gauge = (s.value, s.min, s.max, s.seen)
                if prev == gauge:
                    continue
                item.update(value=s.value, min=s.min, max=s.max, seen=s.seen)
                self._last[key] = gauge
            series.append(item)
        out: dict[str, Any] = {"series": series}
        if reg.types != self._types:
            out["types"], out["contains"] = dict(reg.types), dict(reg.contains)
            self._types = dict(reg.types)
        return out

    def close(self, result: RunResult | None = None) -> None:
        self._drain()
        if result is not None:
            end = {"interrupted": result.interrupted, "aborted": result.aborted}
            self._write({"type": "end", "duration": result.duration, "error": result.error, **end})
        if self._fh is not None:
            with contextlib.suppress(OSError, ValueError):
                self._fh.close()
            self._fh = None

    def timeline(self) -> list[dict[str, Any]]:
        """Every timeline point of the run, read back from the file (each line's point only,
        not its registry delta), then those a write error kept in memory."""
        decode = json.JSONDecoder().raw_decode
        points = []
        with contextlib.suppress(OSError), open(self.path, encoding="utf-8") as fh:
            for line in fh:
                at = line.find(',"point":', 0, 80)
                if not line.startswith('{"type":"tick"') or at < 0 or not line.endswith("\n"):
                    continue  # a line without its end is the write that failed: its point
                    # may be whole, but it is among the unwritten ones already
                try:
                    point, _end = decode(line, at + len(',"point":'))
                except ValueError:
                    continue  # a torn line (the write that failed)
                points.append(point)
        return points + self._unwritten


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_encodable)


def _encodable(obj: Any) -> Any:
    """A tick line's fresh histogram as its bucket counts; anything else as text."""
    from simulator.metrics.histogram import Histogram

    return obj.counts if isinstance(obj, Histogram) else str(obj)


#: Stands for a fresh histogram's counts while the rest of its series is encoded.
_COUNTS = "scfleet:counts"


def _dumps_item(item: dict[str, Any]) -> str:
    """``_dumps(item)`` for one series of a tick line; a fresh histogram's counts are written
    from its bucket arrays (one formatting of all pairs, no dict of Python ints per bucket)."""
    from simulator.metrics.histogram import Histogram

    hist = item.get("hist")
    if not isinstance(hist, dict) or not isinstance(counts := hist.get("counts"), Histogram):
        return _dumps(item)
    text = _dumps({**item, "hist": {**hist, "counts": _COUNTS}})
    head, _, tail = text.rpartition(f'"{_COUNTS}"')  # the last: tags come before the hist
    return head + _counts_text(counts) + tail


def _counts_text(h: Any) -> str:
    """``_dumps(h.counts)``: ``{"index":count,...}`` in first-touch order, all pairs formatted
    in one ``%`` (no table of texts kept: at 16,000 buckets it held ~1 MB for the run)."""
    import numpy as np

    idx, cnt = h.bucket_arrays()
    n = len(idx)
    if not n:
        return "{}"
    pairs = np.empty(2 * n, np.int64)
    pairs[0::2], pairs[1::2] = idx, cnt
    return "{" + ('"%d":%d,' * n)[:-1] % tuple(pairs.tolist()) + "}"


def _encode_tick(line: dict[str, Any], out: list[str]) -> Iterator[None]:
    """``_dumps(line)`` for a tick line, into ``out`` piece by piece, yielding after each
    histogram series (the caller gives the event loop a turn there). The keys keep their
    order (``timeline()`` finds ``"point"`` near the start)."""
    reg = line["registry"]
    head = {k: v for k, v in line.items() if k not in ("registry", "notes")}
    out.append(_dumps(head)[:-1] + ',"registry":{"series":[')
    for i, item in enumerate(reg["series"]):
        out.append(("," if i else "") + _dumps_item(item))
        if "hist" in item:
            yield
    out.append("]")
    for key in reg:
        if key != "series":
            out.append(f",{_dumps(key)}:{_dumps(reg[key])}")
    out.append("}")
    if "notes" in line:
        out.append(',"notes":' + _dumps(line["notes"]))
    out.append("}")


def encoded_tick(line: dict[str, Any]) -> str:
    """:func:`_encode_tick` in one piece (closing, or a bench timing the line as written)."""
    parts: list[str] = []
    for _ in _encode_tick(line, parts):
        pass
    return "".join(parts)


#: The longest run.ndjson line ``scfleet report`` reads, as summary.json's cap (a tick line is
#: one second's registry delta: a histogram series whose ~17,000 buckets all moved in that
#: second is ~0.25 MB, so this holds ~250 of them); a longer one, or a file that never ends a
#: line (a link to /dev/zero), is one line naming the file and the line, read no further.
MAX_STREAM_LINE = 64 << 20


def _stream_lines(path: Path) -> Iterator[tuple[int, str]]:
    """run.ndjson's lines, numbered, read one at a time (a killed long run's stream can be GBs:
    it was read whole, then split, then every tick kept), each at most
    :data:`MAX_STREAM_LINE`. The same lines as ``read_text().splitlines()`` gave."""
    number = 0
    with open_run_file(path) as fh:
        while raw := fh.readline(MAX_STREAM_LINE + 1):
            if len(raw) > MAX_STREAM_LINE and raw[-1:] != b"\n":
                raise ConfigError(
                    f"line {number + 1} is longer than {MAX_STREAM_LINE >> 20} MiB: "
                    "not a line scfleet writes",
                    source=str(path),
                )
            for line in raw.decode("utf-8", errors="replace").splitlines():
                number += 1
                yield number, line


class _Rebuild:
    """A run stream folded as it is read: the registry, timeline and notes of its tick lines
    (none of them kept), its start and end lines, its damaged lines' numbers."""

    def __init__(self) -> None:
        from simulator.metrics import Registry

        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.damaged: list[int] = []
        self.reg = Registry()
        self.types: dict[str, str] = {}
        self.contains: dict[str, str] = {}
        self.notes: list[str] = []
        self.timeline: list[Any] = []
        self.ticks = 0
        self.first: dict[str, Any] | None = None  # the first tick line, its registry aside
        #: the first tick line not shaped as scfleet streams it: raised once the config loaded
        self.error: Exception | None = None

    def read(self, run_dir: Path) -> None:
        """A torn last line is the write a kill cut, not damage; a line that is not JSON with a
        line after it is: the second it held is in no figure."""
        path = run_dir / STREAM
        unparsed: list[int] = []  # damaged once a non-blank line follows
        try:
            for number, line in _stream_lines(path):
                if line.strip():
                    self.damaged += unparsed
                    unparsed = []
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):  # RecursionError: '[' * 100000
                    unparsed.append(number)  # else the line being written when it was killed
                    continue
                if not isinstance(obj, dict):
                    self.damaged.append(number)
                    continue
                if obj.get("type") == "start" and self.start is None:
                    self.start = obj
                elif obj.get("type") == "tick":
                    self.tick(obj)
                elif obj.get("type") == "end":
                    self.end = obj
        except FileNotFoundError:
            raise ConfigError(
                "not a run folder (no summary.json, no run.ndjson)", source=str(run_dir)
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", source=str(path)) from None
        if self.start is None or not isinstance(self.start.get("effective"), dict):
            raise ConfigError("no start line: not a run stream", source=str(path))

    def tick(self, tick: dict[str, Any]) -> None:
        from simulator.metrics import Registry

        self.ticks += 1
        if self.first is None:
            self.first = {k: v for k, v in tick.items() if k != "registry"}
        if self.error is not None:
            return
        try:
            delta = tick.get("registry", {})
            self.types.update(delta.get("types", {}))
            self.contains.update(delta.get("contains", {}))
            part = Registry.from_dict(
                {"types": self.types, "contains": self.contains, "series": delta.get("series", [])}
            )
            self.reg.merge(part)
            self.timeline.append(tick.get("point", {}))
            self.notes += tick.get("notes", [])
        except (KeyError, TypeError, AttributeError, ValueError, IndexError, RecursionError) as exc:
            self.error = exc


def rebuild_run(run_dir: Path) -> dict[str, Path]:
    """Write summary.json, summary.txt, report.html, … of a run that never finished, from
    its stream. Counts and percentiles are exact up to the last streamed tick. A stream with
    its end line is a run that ended (whole, interrupted or aborted, as that line says) and was
    killed while its folder was written: it was rebuilt as unfinished, so the gate refused it."""
    fold = _Rebuild()
    fold.read(run_dir)
    assert fold.start is not None
    effective = fold.start["effective"]
    try:
        result = _rebuilt_result(run_dir, effective, fold)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, RecursionError) as exc:
        # a line that is JSON but not shaped as scfleet streams it (hand-edited, another
        # tool's): before, a traceback
        raise ConfigError(
            f"cannot rebuild: a line is not as scfleet writes it ({type(exc).__name__}: {exc})",
            source=str(run_dir / STREAM),
        ) from None
    return write_run(result, run_dir, effective)


def _rebuilt_result(run_dir: Path, effective: dict[str, Any], fold: _Rebuild) -> RunResult:
    from simulator.config import parse_config, scale_times
    from simulator.run.runner import threshold_results

    source = str(effective.get("source", "<run>"))
    try:
        cfg = parse_config(
            dict(effective.get("config", {})),
            source,
            no_thresholds=bool(effective.get("no_thresholds", False)),
        )
        cfg = scale_times(cfg, float(effective.get("time_scale", 1.0)))
    except ConfigError as exc:
        raise ConfigError(
            f"cannot rebuild, the recorded config no longer loads ({exc})",
            source=str(run_dir / STREAM),
        ) from None
    if fold.error is not None:
        raise fold.error
    reg, timeline, notes, end, damaged = fold.reg, fold.timeline, fold.notes, fold.end, fold.damaged
    duration = float(timeline[-1].get("t", 0.0)) if timeline else 0.0
    first = fold.first
    started = (
        float(first["wall"]) - float(timeline[0].get("t", 0.0))
        if first is not None
        else time.time()
    )
    if end is not None:
        duration = float(end.get("duration") or duration)
        notes.append(
            f"rebuilt by scfleet report from {STREAM}: the run ended but its folder was not "
            f"written whole; per-device rows were not recorded in the stream"
        )
    else:
        notes.append(
            f"rebuilt by scfleet report from {STREAM}: the run did not finish; "
            f"{fold.ticks} ticks ({duration:.0f}s) were recorded, per-device rows were not"
        )
    if damaged:  # a second in no figure: the rebuild is not the whole run, whatever it says
        shown = ", ".join(str(n) for n in damaged[:5]) + (", …" if len(damaged) > 5 else "")
        notes.append(
            f"{STREAM} is damaged (line{'s' if len(damaged) > 1 else ''} {shown} not a "
            "record): what it held is in no figure, so the run is counted as unfinished"
        )
    return RunResult(
        config=cfg,
        registry=reg,
        timeline=timeline,
        started_at=started,
        duration=duration,
        interrupted=True if end is None or damaged else bool(end.get("interrupted")),
        aborted=None if end is None else end.get("aborted"),
        error=None if end is None else end.get("error"),
        thresholds=threshold_results(
            cfg, reg, duration, None if end is None else end.get("aborted")
        ),
        devices=[],
        target=str(effective.get("target", "")),
        notes=notes,
        think_cut=sum(
            int(s.get("think_cut", 0)) for p in timeline for s in p["scenarios"].values()
        ),
    )
