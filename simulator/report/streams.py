"""``--out json=FILE`` and ``--out csv=FILE``: k6's per-sample streams, written as the run goes.

The JSON file is k6's ``--out json`` format: a ``{"type":"Metric"}`` declaration the first time
a metric appears, then one ``{"metric":M,"type":"Point","data":{"time","value","tags"}}`` per
sample. The CSV file has k6's columns (``metric_name,timestamp,metric_value,check,error,...``),
checked against k6 1.1.0's own output (tests/simulator/data/k6_1.1.0).

Cost is the point: at 2,000 requests/s a request yields ~12 samples, and formatting them one by
one in Python would cost more CPU than the request itself. So nothing happens per request: the
recorders already buffer each request as one int64 row (with its end time), and at each tick
:class:`PointWriter` receives those rows in bulk, grouped by their series' tags. Every line of a
group has the same bytes except the time and the value, so a line is a byte template; the
templates of all rows are laid out in one uint8 matrix and the digits of times and values are
written into it with vectorized arithmetic. Numbers are right-aligned to the batch's widest
(JSON: spaces before the value, which JSON allows; CSV: leading zeros), so no pass is spent
squeezing lines to their own lengths. Samples the engine does not buffer per request (checks, dropped iterations) are
written per tick as one point per sample, stamped with the tick's time; ``vus``/``vus_max`` are
sampled once per tick, as k6 samples them.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from simulator.metrics.registry import Registry

Tags = tuple[tuple[str, str], ...]

#: k6 1.1's CSV header (``k6 run --out csv=…``); tags without a column go to ``extra_tags``.
CSV_COLUMNS = (
    "metric_name",
    "timestamp",
    "metric_value",
    "check",
    "error",
    "error_code",
    "expected_response",
    "group",
    "method",
    "name",
    "proto",
    "scenario",
    "service",
    "status",
    "subproto",
    "tls_version",
    "url",
    "extra_tags",
    "metadata",
)
_TAG_COLUMNS = CSV_COLUMNS[3:17]

# Field kinds in a line template.
_TIME = "time"  # RFC 3339 with nanoseconds (JSON)
_UNIX = "unix"  # whole Unix seconds (CSV)
_MS = "ms"  # int µs as milliseconds with 3 decimals (JSON)
_MS6 = "ms6"  # int µs as milliseconds with 6 decimals (CSV, k6 prints %f)
_INT = "int"  # integer as is (JSON)
_INT6 = "int6"  # integer with 6 zero decimals (CSV)


@dataclass(frozen=True)
class Field:
    """A variable part of a line: ``kind`` formatting of column ``column`` of the value matrix
    (times use the row's timestamp)."""

    kind: str
    column: int = -1


Segment = bytes | Field


def _digits(values: Any, width: int, pad: int) -> Any:
    """(n, width) ASCII digits of non-negative ints, leading zeros replaced by ``pad``."""
    import numpy as np

    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    d = ((values[:, None] // powers) % 10 + 48).astype(np.uint8)
    if pad != ord("0"):
        lead = values[:, None] < powers
        lead[:, -1] = False
        d[lead] = pad
    return d


def _width(values: Any) -> int:
    top = int(values.max()) if len(values) else 0
    return max(1, len(str(top)))


def _number(a: Any, neg: Any, pad: int) -> Any:
    """Right-aligned integer part with its sign: ``"  -12"`` (JSON) or ``"-0012"`` (CSV)."""
    import numpy as np

    width = _width(a)
    body = _digits(a, width, pad)
    if not neg.any():
        return body
    out = np.concatenate((np.full((len(a), 1), pad, dtype=np.uint8), body), axis=1)
    if pad == ord("0"):
        out[neg, 0] = ord("-")
    else:  # the sign goes right before the first digit
        ndig = np.maximum(np.floor(np.log10(np.maximum(a, 1))).astype(np.int64) + 1, 1)
        rows = np.flatnonzero(neg)
        out[rows, width - ndig[rows]] = ord("-")
    return out


def _render_field(kind: str, values: Any, sec: Any, frac: Any, day_prefix: Any) -> Any:
    """(n, w) uint8 bytes for one field over all rows, right-aligned to the batch's widest.

    Numbers are padded to a common width so every line of a batch has the same length and
    the matrix needs no compaction: JSON pads with spaces (whitespace is valid before a JSON
    value), CSV with leading zeros (``0008.663000`` reads as 8.663 everywhere).
    """
    import numpy as np

    n = len(sec)
    if kind == _TIME:
        out = np.empty((n, 30), dtype=np.uint8)
        out[:, :11] = day_prefix
        sod = sec % 86400
        hms = np.stack((sod // 3600, sod // 60 % 60, sod % 60), axis=1)
        for i, col in enumerate((11, 14, 17)):
            out[:, col] = hms[:, i] // 10 + 48
            out[:, col + 1] = hms[:, i] % 10 + 48
        out[:, 13] = out[:, 16] = ord(":")
        out[:, 19] = ord(".")
        powers = 10 ** np.arange(8, -1, -1, dtype=np.int64)
        out[:, 20:29] = (frac[:, None] // powers) % 10 + 48
        out[:, 29] = ord("Z")
        return out
    if kind == _UNIX:
        return _digits(sec, _width(sec), ord("0"))
    pad = ord("0") if kind in (_INT6, _MS6) else ord(" ")
    v = values
    neg = v < 0
    a = np.abs(v)
    if kind in (_INT, _INT6):
        body = _number(a, neg, pad)
        if kind == _INT6:
            tail = np.broadcast_to(np.frombuffer(b".000000", dtype=np.uint8), (n, 7))
            body = np.concatenate((body, tail), axis=1)
        return body
    q, r = np.divmod(a, 1000)
    parts = [_number(q, neg, pad), np.full((n, 1), ord("."), dtype=np.uint8)]
    parts.append(_digits(r, 3, ord("0")))
    if kind == _MS6:
        parts.append(np.full((n, 3), ord("0"), dtype=np.uint8))
    return np.concatenate(parts, axis=1)


def render(lines: Sequence[Sequence[Segment]], times_ns: Any, values: Any | None = None) -> Any:
    """Lines for every row: each template of ``lines`` filled from the row, rows in order, as
    a contiguous uint8 array (written to the file as it is: no copy into ``bytes``).

    ``times_ns`` is the rows' wall-clock time (int64 ns since the epoch), ``values`` an
    (n, k) int64 matrix the fields' columns index.
    """
    import numpy as np

    n = len(times_ns)
    if n == 0:
        return np.empty(0, dtype=np.uint8)
    sec, frac = np.divmod(times_ns, 1_000_000_000)
    days = sec // 86400
    day_prefix = np.empty((n, 11), dtype=np.uint8)
    if int(days.min()) == int(days.max()):
        day_prefix[:] = np.frombuffer(_day(int(days[0])), dtype=np.uint8)
    else:  # a run across midnight: a handful of distinct days
        for i, d in enumerate(days.tolist()):
            day_prefix[i] = np.frombuffer(_day(d), dtype=np.uint8)
    # One template row (constant bytes, blanks where fields go), copied to every row in one
    # fill; then each field is one strided copy. Far fewer small copies than concatenating
    # every constant piece row by row.
    row = bytearray()
    places: list[tuple[int, Any]] = []
    cache: dict[Field, Any] = {}
    for segs in lines:
        for seg in segs:
            if isinstance(seg, bytes):
                row += seg
                continue
            block = cache.get(seg)
            if block is None:
                col = values[:, seg.column] if values is not None and seg.column >= 0 else None
                block = cache[seg] = _render_field(seg.kind, col, sec, frac, day_prefix)
            places.append((len(row), block))
            row += bytes(block.shape[1])
    mat = np.empty((n, len(row)), dtype=np.uint8)
    mat[:] = np.frombuffer(bytes(row), dtype=np.uint8)
    for off, block in places:
        mat[:, off : off + block.shape[1]] = block
    return mat


def _day(day: int) -> bytes:
    return time.strftime("%Y-%m-%dT", time.gmtime(day * 86400)).encode()


# --------------------------------------------------------------------------- the writer


def _k6_tags(tags: Tags) -> Tags:
    """A series' tags as k6 writes them on a sample: sorted, with k6's (empty) ``group``."""
    have = dict(tags)
    have.setdefault("group", "")
    return tuple(sorted(have.items()))


def _tags_json(tags: Tags) -> bytes:
    return json.dumps(dict(tags), separators=(",", ":"), ensure_ascii=False).encode()


def _csv_cells(cells: Iterable[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(list(cells))
    return buf.getvalue().encode()


@dataclass(frozen=True)
class Stream:
    """One ``--out`` destination: ``json`` or ``csv`` and its file."""

    kind: str
    path: Path


def parse_out(value: str) -> Stream | None:
    """``json=FILE`` / ``csv=FILE`` → a stream; anything else is not one (a run folder)."""
    kind, sep, path = value.partition("=")
    if sep and kind in ("json", "csv"):
        if not path:
            raise ValueError(f"--out {value}: expected {kind}=FILE")
        return Stream(kind, Path(path))
    return None


@dataclass(frozen=True)
class PartSpec:
    """A worker's part of a run's per-sample streams (pickled to it): the run writer's
    settings and the worker's own files, one per stream (simulator.run.workers)."""

    streams: tuple[Stream, ...]
    metric_types: tuple[tuple[str, tuple[str, str]], ...]
    thresholds: tuple[tuple[str, str, Tags], ...]

    def open(self) -> PointWriter:
        return PointWriter(self.streams, dict(self.metric_types), self.thresholds, part=True)


#: How a k6 metric declaration line starts (a sample line starts with ``{"metric":``).
_DECLARATION = b'{"type":"Metric"'


class PointWriter:
    """Writes buffered samples to k6-format JSON and/or CSV files, tick by tick.

    The recorders hand over their rows when they fold them (``Registry.sink``); the runner
    calls :meth:`tick` once per tick and :meth:`close` at the end. With workers
    (simulator.run.workers) each worker's writer is a ``part`` (no CSV header, no ``vus``
    gauges: the coordinator's) and the coordinator adopts each tick of the parts (:meth:`adopt`).
    """

    def __init__(
        self,
        streams: Sequence[Stream],
        metric_types: Mapping[str, tuple[str, str]],
        thresholds: Iterable[tuple[str, str, Tags]] = (),
        *,
        part: bool = False,
    ) -> None:
        self.part = part
        thresholds = tuple(thresholds)
        self._settings = (tuple(metric_types.items()), thresholds)
        self._files: dict[str, Any] = {}
        for s in streams:
            try:
                self._files[s.kind] = open(s.path, "wb")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                for fh in self._files.values():
                    fh.close()
                from scfleet_core.errors import ConfigError

                raise ConfigError(
                    f"cannot write: {exc.strerror or exc}", source=f"--out {s.kind}={s.path}"
                ) from None
        self._types = dict(metric_types)
        self._thresholds: dict[str, list[str]] = {}
        self._submetrics: dict[str, list[dict[str, Any]]] = {}
        for key, expr, tags in thresholds:
            name = key.split("{", 1)[0]
            if not tags:
                self._thresholds.setdefault(name, []).append(expr)
            elif not any(s["name"] == key for s in self._submetrics.get(name, [])):
                suffix = key[len(name) + 1 : -1]
                self._submetrics.setdefault(name, []).append(
                    {"name": key, "suffix": suffix, "tags": dict(tags)}
                )
        self._declared: set[str] = set()
        self._templates: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}
        self._pending: dict[str, list[Any]] = {k: [] for k in self._files}
        self._wall0 = time.time_ns()
        self._perf0 = time.perf_counter_ns()
        self._specs: dict[tuple[Any, ...], tuple[tuple[str, Tags, str, int], ...]] = {}
        self._seen: dict[tuple[str, Tags], tuple[int, int]] = {}  # checks, dropped: last counts
        if "csv" in self._files and not part:
            self._pending["csv"].append(",".join(CSV_COLUMNS).encode() + b"\n")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The streams written (``json``, ``csv``), in order."""
        return tuple(self._files)

    def part_spec(self, paths: tuple[Path, ...]) -> PartSpec:
        """A worker's part: these settings, writing stream i to ``paths[i]``."""
        streams = tuple(Stream(kind, path) for kind, path in zip(self.kinds, paths, strict=True))
        return PartSpec(streams, *self._settings)

    def sizes(self) -> tuple[int, ...]:
        """Bytes written to each stream so far (after a flush: where this tick ends)."""
        return tuple(fh.tell() for fh in self._files.values())

    def adopt(self, kind: str, data: bytes) -> None:
        """Lines another writer wrote (a worker's part) join this one's next flush; a k6
        metric declaration already written here is dropped (one per metric per file)."""
        if kind not in self._files or not data:
            return
        if kind == "json" and (data.startswith(_DECLARATION) or b"\n" + _DECLARATION in data):
            keep = []
            for line in data.splitlines(keepends=True):
                if line.startswith(_DECLARATION):
                    name = json.loads(line)["metric"]
                    if name in self._declared:
                        continue
                    self._declared.add(name)
                keep.append(line)
            data = b"".join(keep)
        self._pending[kind].append(data)

    def written_elsewhere(self, name: str, tags: Tags, value: Any) -> None:
        """Checks and dropped iterations counted in the registry whose samples another writer
        wrote (a worker): :meth:`tick` does not write them again."""
        if name == "checks" and hasattr(value, "passes"):
            passes, total = self._seen.get((name, tags), (0, 0))
            self._seen[(name, tags)] = (passes + value.passes, total + value.total)
        elif name == "dropped_iterations" and hasattr(value, "value"):
            last, _ = self._seen.get((name, tags), (0, 0))
            self._seen[(name, tags)] = (last + int(value.value), 0)

    # -- templates ----------------------------------------------------------------------

    def _declare(self, name: str) -> None:
        if name in self._declared or "json" not in self._files:
            return
        self._declared.add(name)
        mtype, contains = self._types.get(name, ("counter", "default"))
        data = {
            "name": name,
            "type": mtype,
            "contains": contains,
            "thresholds": self._thresholds.get(name, []),
            "submetrics": self._submetrics.get(name),
        }
        line = {"type": "Metric", "data": data, "metric": name}
        self._pending["json"].append(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def _lines(
        self, metrics: Sequence[tuple[str, Tags, str, int]]
    ) -> tuple[list[list[Segment]], list[list[Segment]]]:
        """JSON and CSV line templates for (metric, tags, value kind, column) samples of a row."""
        key = tuple(metrics)
        got = self._templates.get(key)
        if got is not None:
            return got
        js: list[list[Segment]] = []
        cs: list[list[Segment]] = []
        for name, tags, kind, col in metrics:
            self._declare(name)
            if kind == "const1":
                jv: Segment = b"1"
                cv: Segment = b"1.000000"
            elif kind == "time":
                jv, cv = Field(_MS, col), Field(_MS6, col)
            else:
                jv, cv = Field(_INT, col), Field(_INT6, col)
            head = b'{"metric":"' + name.encode() + b'","type":"Point","data":{"time":"'
            tail = b',"tags":' + _tags_json(tags) + b"}}\n"
            js.append([head, Field(_TIME), b'","value":', jv, tail])
            have = dict(tags)
            extra = "&".join(f"{k}={v}" for k, v in sorted(have.items()) if k not in _TAG_COLUMNS)
            cells = _csv_cells([have.get(c, "") for c in _TAG_COLUMNS] + [extra, ""])
            cs.append([name.encode() + b",", Field(_UNIX), b",", cv, b"," + cells + b"\n"])
        self._templates[key] = (js, cs)
        return js, cs

    # -- samples ------------------------------------------------------------------------

    def _wall(self, perf_ns: Any) -> Any:
        return perf_ns - self._perf0 + self._wall0

    def rows(
        self, metrics: Sequence[tuple[str, Tags, str, int]], perf_ns: Any, values: Any
    ) -> None:
        """Samples of buffered rows: for each row, one point per ``(metric, tags, kind,
        column)`` — kind ``time`` (µs → ms), ``int`` or ``const1`` — stamped with the row's
        ``perf_counter_ns`` time."""
        if not len(perf_ns):
            return
        js, cs = self._lines(metrics)
        wall = self._wall(perf_ns)
        if "json" in self._files:
            self._pending["json"].append(render(js, wall, values))
        if "csv" in self._files:
            self._pending["csv"].append(render(cs, wall, values))

    def requests(self, tags: Tags, data_tags: Tags, rows: NDArray[np.int64]) -> None:
        """Rows of ``metrics.RequestRecorder`` (one outcome's series): k6's HTTP samples,
        scfleet's ``http_req_corrected_duration``, and the request's bytes."""
        from simulator.metrics.recorders import END_COLUMN
        from simulator.metrics.recorders import REQUEST_COLUMNS as col

        key = ("requests", tags, data_tags)
        spec = self._specs.get(key)
        if spec is None:
            t, d = _k6_tags(tags), _k6_tags(data_tags)
            spec = self._specs[key] = (
                ("http_reqs", t, "const1", 0),
                *(
                    (name, t, "int" if name == "http_req_failed" else "time", c)
                    for name, c in col.items()
                    if name.startswith("http_req")
                ),
                ("data_sent", d, "int", col["data_sent"]),
                ("data_received", d, "int", col["data_received"]),
            )
        self.rows(spec, rows[:, END_COLUMN], rows)

    def iterations(self, tags: Tags, lag_tags: Tags, rows: NDArray[np.int64]) -> None:
        """Rows of ``metrics.IterationRecorder``: (duration µs, lag µs, end perf_counter_ns)."""
        key = ("iterations", tags, lag_tags)
        spec = self._specs.get(key)
        if spec is None:
            t = _k6_tags(tags)
            spec = self._specs[key] = (
                ("iterations", t, "const1", 0),
                ("iteration_duration", t, "time", 0),
                ("schedule_lag", _k6_tags(lag_tags), "time", 1),
            )
        self.rows(spec, rows[:, 2], rows)

    def counts(self, name: str, tags: Tags, ones: int, zeros: int, perf_ns: int) -> None:
        """``ones`` samples of value 1 and ``zeros`` of value 0 (checks, dropped iterations)."""
        import numpy as np

        if ones + zeros == 0:
            return
        values = np.concatenate(
            (np.ones(ones, dtype=np.int64), np.zeros(zeros, dtype=np.int64))
        ).reshape(-1, 1)
        stamps = np.full(ones + zeros, perf_ns, dtype=np.int64)
        self.rows(((name, tags, "int", 0),), stamps, values)

    def tick(self, registry: Registry, gauges: Iterable[tuple[str, float]] = ()) -> None:
        """Once per tick: per-sample counts the engine keeps only as totals, sampled gauges,
        then everything pending goes to the files."""
        from simulator.metrics import Counter, Rate

        now = time.perf_counter_ns()
        for (name, tags), series in list(registry.series.items()):
            if name == "checks" and isinstance(series, Rate):
                passes, total = self._seen.get((name, tags), (0, 0))
                self._seen[(name, tags)] = (series.passes, series.total)
                ones = series.passes - passes
                self.counts(name, _k6_tags(tags), ones, series.total - total - ones, now)
            elif name == "dropped_iterations" and isinstance(series, Counter):
                last, _ = self._seen.get((name, tags), (0, 0))
                self._seen[(name, tags)] = (int(series.value), 0)
                self.counts(name, _k6_tags(tags), int(series.value) - last, 0, now)
        import numpy as np

        for name, value in () if self.part else gauges:
            self.rows(
                ((name, (), "int", 0),),
                np.array([now], dtype=np.int64),
                np.array([[round(value)]], dtype=np.int64),
            )
        self.flush()

    def flush(self) -> None:
        for kind, fh in self._files.items():
            chunks = self._pending[kind]
            if chunks:
                for chunk in chunks:
                    fh.write(chunk if isinstance(chunk, bytes) else chunk.data)
                chunks.clear()
                fh.flush()

    def close(self) -> None:
        self.flush()
        for fh in self._files.values():
            fh.close()
        self._files = {}
