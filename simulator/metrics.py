"""Metrics with k6's names and types, stored in bounded, mergeable form.

Trends (``http_req_duration`` …) go into HDR-style log-linear histograms: values in integer
microseconds, about three significant digits (relative error < 0.1 %), memory bounded by the
value range, not the sample count — unlike k6, which keeps every sample. Histograms, counters
and rates merge exactly, so a run split over processes or machines adds up to the same summary.

Series are keyed by metric name and a sorted tuple of tags. The request hot path never builds
tag tuples: a behaviour resolves a :class:`RequestRecorder` once per (scenario, endpoint, kind)
and it caches the per-status series.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, NamedTuple

Tags = tuple[tuple[str, str], ...]

_SUB_BITS = 10  # 1024 half-buckets: 2048 linear slots before the first doubling
_SUB_HALF = 1 << _SUB_BITS
_LINEAR = _SUB_HALF << 1


def bucket_index(value: int) -> int:
    """Log-linear bucket of a non-negative integer (HDR layout, 3 significant digits)."""
    if value < _LINEAR:
        return value if value > 0 else 0
    shift = value.bit_length() - (_SUB_BITS + 1)
    return ((shift + 1) << _SUB_BITS) + (value >> shift) - _SUB_HALF


def bucket_bounds(index: int) -> tuple[int, int]:
    """Lowest and highest value that land in ``index``."""
    if index < _LINEAR:
        return index, index
    shift = (index >> _SUB_BITS) - 1
    sub = (index & (_SUB_HALF - 1)) + _SUB_HALF
    return sub << shift, ((sub + 1) << shift) - 1


class Histogram:
    """HDR-style histogram of integer values (µs); exact count, sum, min and max."""

    __slots__ = ("counts", "count", "total", "min", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        if value < 0:
            value = 0
        if value < _LINEAR:
            idx = value
        else:
            shift = value.bit_length() - (_SUB_BITS + 1)
            idx = ((shift + 1) << _SUB_BITS) + (value >> shift) - _SUB_HALF
        c = self.counts
        c[idx] = c.get(idx, 0) + 1
        if self.count == 0:
            self.min = self.max = value
        elif value < self.min:
            self.min = value
        elif value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        if other.count == 0:
            return
        c = self.counts
        for idx, n in other.counts.items():
            c[idx] = c.get(idx, 0) + n
        if self.count == 0:
            self.min, self.max = other.min, other.max
        else:
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, pct: float) -> float:
        """Value at a percentile (0..100), as HDR reports it: highest equivalent value,
        clamped to the exact min and max."""
        if self.count == 0:
            return 0.0
        if pct <= 0:
            return float(self.min)
        if pct >= 100:
            return float(self.max)
        rank = max(1, math.ceil(pct / 100 * self.count))
        seen = 0
        for idx in sorted(self.counts):
            seen += self.counts[idx]
            if seen >= rank:
                hi = bucket_bounds(idx)[1]
                return float(min(max(hi, self.min), self.max))
        return float(self.max)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {str(k): v for k, v in self.counts.items()},
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        h = cls()
        h.counts = {int(k): int(v) for k, v in data["counts"].items()}
        h.count, h.total = int(data["count"]), int(data["total"])
        h.min, h.max = int(data["min"]), int(data["max"])
        return h


# --------------------------------------------------------------------------- metric values


class Counter:
    __slots__ = ("value",)
    kind = "counter"

    def __init__(self) -> None:
        self.value = 0.0

    def add(self, v: float = 1.0) -> None:
        self.value += v

    def merge(self, other: Counter) -> None:
        self.value += other.value


class Rate:
    """Share of non-zero samples (k6's Rate): ``http_req_failed``, ``checks``."""

    __slots__ = ("passes", "total")
    kind = "rate"

    def __init__(self) -> None:
        self.passes = 0
        self.total = 0

    def add(self, passed: bool) -> None:
        self.total += 1
        if passed:
            self.passes += 1

    def merge(self, other: Rate) -> None:
        self.passes += other.passes
        self.total += other.total

    @property
    def rate(self) -> float:
        return self.passes / self.total if self.total else 0.0


class Gauge:
    __slots__ = ("value", "min", "max", "seen")
    kind = "gauge"

    def __init__(self) -> None:
        self.value = 0.0
        self.min = 0.0
        self.max = 0.0
        self.seen = False

    def set(self, v: float) -> None:
        if not self.seen:
            self.min = self.max = v
            self.seen = True
        elif v < self.min:
            self.min = v
        elif v > self.max:
            self.max = v
        self.value = v

    def merge(self, other: Gauge) -> None:
        if not other.seen:
            return
        if not self.seen:
            self.min, self.max, self.seen = other.min, other.max, True
        else:
            self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.value = other.value


class Trend:
    __slots__ = ("hist",)
    kind = "trend"

    def __init__(self) -> None:
        self.hist = Histogram()

    def add_us(self, us: int) -> None:
        self.hist.record(us)

    def merge(self, other: Trend) -> None:
        self.hist.merge(other.hist)


MetricValue = Counter | Rate | Gauge | Trend
_TYPES: dict[str, type[Counter] | type[Rate] | type[Gauge] | type[Trend]] = {
    "counter": Counter,
    "rate": Rate,
    "gauge": Gauge,
    "trend": Trend,
}

#: Every metric a run can produce: name → (type, contains); "time" trends are reported in ms,
#: as in k6. The one list: threshold validation (``thresholds.validate_thresholds``) knows a
#: metric only if it is here, including those only some runs produce (``checks`` needs checks,
#: ``boards_*`` needs a ``[boards]`` table).
BUILTIN: dict[str, tuple[str, str]] = {
    "http_reqs": ("counter", "default"),
    "http_req_duration": ("trend", "time"),
    "http_req_waiting": ("trend", "time"),
    "http_req_receiving": ("trend", "time"),
    "http_req_sending": ("trend", "time"),
    "http_req_connecting": ("trend", "time"),
    "http_req_corrected_duration": ("trend", "time"),
    "http_req_failed": ("rate", "default"),
    "iterations": ("counter", "default"),
    "iteration_duration": ("trend", "time"),
    "schedule_lag": ("trend", "time"),
    "dropped_iterations": ("counter", "default"),
    "interrupted_iterations": ("counter", "default"),
    "vus": ("gauge", "default"),
    "vus_max": ("gauge", "default"),
    "data_sent": ("counter", "data"),
    "data_received": ("counter", "data"),
    "checks": ("rate", "default"),
    "boards_lost": ("counter", "default"),
    "boards_rejoined": ("counter", "default"),
}

#: Tag keys on every HTTP sample (k6's system tags, plus scfleet's ``endpoint`` and ``kind``);
#: ``error_code`` appears on failures and 4xx/5xx answers, ``error`` when there was no answer.
HTTP_TAG_KEYS = frozenset(
    {
        "scenario",
        "kind",
        "endpoint",
        "method",
        "status",
        "expected_response",
        "name",
        "url",
        "proto",
        "error_code",
        "error",
    }
)
_HTTP_METRICS = (
    "http_reqs",
    "http_req_failed",
    "http_req_duration",
    "http_req_connecting",
    "http_req_sending",
    "http_req_waiting",
    "http_req_receiving",
    "http_req_corrected_duration",
)
#: The one place that says which tag keys a metric's samples can carry. Metrics marked with a
#: scenario's base tags also carry the keys of that scenario's ``tags`` table.
RECORDED_TAG_KEYS: dict[str, frozenset[str]] = {
    **dict.fromkeys(_HTTP_METRICS, HTTP_TAG_KEYS),
    "data_sent": frozenset({"scenario", "kind"}),
    "data_received": frozenset({"scenario", "kind"}),
    "iterations": frozenset({"scenario", "kind"}),
    "iteration_duration": frozenset({"scenario", "kind"}),
    "checks": frozenset({"scenario", "kind", "check"}),
    "schedule_lag": frozenset({"scenario"}),
    "dropped_iterations": frozenset({"scenario"}),
    "interrupted_iterations": frozenset({"scenario"}),
    "vus": frozenset(),
    "vus_max": frozenset(),
    "boards_lost": frozenset({"kind"}),
    "boards_rejoined": frozenset({"kind"}),
}
_USER_TAGGED = frozenset({*_HTTP_METRICS, "data_sent", "data_received", "iterations"})
_USER_TAGGED |= {"iteration_duration", "checks"}


def check_threshold_tag_keys(
    thresholds: Iterable[Any], user_keys: Iterable[str], source: str | None = None
) -> None:
    """Refuse a threshold whose tag filter names a key its metric never carries (exit 104):
    ``http_req_duration{expected:true}`` would match no sample and pass — a false green."""
    import difflib

    from scfleet_core.errors import ConfigError

    extra = frozenset(user_keys)
    for th in thresholds:
        known = RECORDED_TAG_KEYS.get(th.metric)
        if known is None:
            continue  # not a metric this table describes; its own validation covers it
        if th.metric in _USER_TAGGED:
            known = known | extra
        for key, _value in th.tags:
            if key in known:
                continue
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"recorded: {', '.join(sorted(known))}"
            raise ConfigError(
                f"no {th.metric} sample carries a tag {key!r} ({hint})",
                source=source,
                key=f'thresholds."{th.metric_key}"',
            )


class Registry:
    """Every series of a run, keyed by (metric name, sorted tags)."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, Tags], MetricValue] = {}
        self.recorders: list[RequestRecorder | IterationRecorder] = []
        self.types: dict[str, str] = {k: v[0] for k, v in BUILTIN.items()}
        self.contains: dict[str, str] = {k: v[1] for k, v in BUILTIN.items()}
        #: Receives every buffered row as it is folded (``--out json/csv``: samples.PointWriter)
        self.sink: Any = None

    def get(self, name: str, tags: Mapping[str, str] | Tags = ()) -> Any:
        key_tags: Tags = tuple(sorted(tags.items())) if isinstance(tags, Mapping) else tags
        key = (name, key_tags)
        s = self.series.get(key)
        if s is None:
            mtype = self.types.get(name)
            if mtype is None:
                raise KeyError(f"unknown metric {name!r}")
            s = self.series[key] = _TYPES[mtype]()
        return s

    def define(self, name: str, mtype: str, contains: str = "default") -> None:
        self.types[name] = mtype
        self.contains[name] = contains

    # -- aggregation ------------------------------------------------------------------

    def flush(self) -> None:
        """Fold the requests recorders have buffered into their series (every read does)."""
        for rec in self.recorders:
            if rec.pending:
                rec.flush()

    def matching(self, name: str, tags: Mapping[str, str] | None = None) -> list[MetricValue]:
        self.flush()
        want = tuple((tags or {}).items())
        out = []
        for (n, t), s in self.series.items():
            if n != name:
                continue
            if want:
                have = dict(t)
                if any(have.get(k) != v for k, v in want):
                    continue
            out.append(s)
        return out

    def merged(self, name: str, tags: Mapping[str, str] | None = None) -> MetricValue | None:
        mtype = self.types.get(name)
        if mtype is None:
            return None
        parts = self.matching(name, tags)
        if not parts:
            return None
        total = _TYPES[mtype]()
        for p in parts:
            total.merge(p)  # type: ignore[arg-type]
        return total

    def metric_type(self, name: str) -> str | None:
        return self.types.get(name)

    def aggregate(
        self, name: str, tags: Mapping[str, str], aggregation: str, duration: float | None = None
    ) -> float | None:
        """One aggregate as thresholds see it (trend values in ms)."""
        m = self.merged(name, tags)
        mtype = self.types.get(name)
        if m is None:
            if mtype == "counter" and aggregation in ("count", "rate"):
                return 0.0
            return None
        if isinstance(m, Trend):
            return trend_stat(m.hist, aggregation, self.contains.get(name) == "time")
        if isinstance(m, Rate):
            return m.rate if m.total else None
        if isinstance(m, Counter):
            if aggregation == "count":
                return m.value
            return m.value / duration if duration else m.value
        if isinstance(m, Gauge):
            return {"value": m.value, "min": m.min, "max": m.max}.get(aggregation)
        return None

    def merge(self, other: Registry) -> None:
        for key, s in other.series.items():
            name = key[0]
            if name not in self.types:
                self.define(name, other.types[name], other.contains.get(name, "default"))
            self.get(name, key[1]).merge(s)

    # -- serialisation (for multi-process runs and run folders) -----------------------

    def to_dict(self) -> dict[str, Any]:
        self.flush()
        out = []
        for (name, tags), s in self.series.items():
            item: dict[str, Any] = {"metric": name, "tags": dict(tags), "type": s.kind}
            if isinstance(s, Trend):
                item["hist"] = s.hist.to_dict()
            elif isinstance(s, Rate):
                item["passes"], item["total"] = s.passes, s.total
            elif isinstance(s, Counter):
                item["value"] = s.value
            else:
                item.update(value=s.value, min=s.min, max=s.max, seen=s.seen)
            out.append(item)
        return {"types": self.types, "contains": self.contains, "series": out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Registry:
        reg = cls()
        for name, mtype in data.get("types", {}).items():
            reg.define(name, mtype, data.get("contains", {}).get(name, "default"))
        for item in data.get("series", []):
            s = reg.get(item["metric"], item["tags"])
            if isinstance(s, Trend):
                s.hist = Histogram.from_dict(item["hist"])
            elif isinstance(s, Rate):
                s.passes, s.total = item["passes"], item["total"]
            elif isinstance(s, Counter):
                s.value = item["value"]
            else:
                s.value, s.min, s.max, s.seen = (
                    item["value"],
                    item["min"],
                    item["max"],
                    item["seen"],
                )
        return reg

    def tag_values(self, tag: str, metric: str = "http_reqs") -> list[str]:
        self.flush()
        vals = {dict(t).get(tag) for (n, t) in self.series if n == metric}
        return sorted(v for v in vals if v is not None)


def trend_stat(h: Histogram, aggregation: str, is_time: bool = True) -> float:
    scale = 1000.0 if is_time else 1.0
    if aggregation == "count":
        return float(h.count)
    if h.count == 0:
        return 0.0
    if aggregation == "avg":
        v = h.mean
    elif aggregation == "min":
        v = float(h.min)
    elif aggregation == "max":
        v = float(h.max)
    elif aggregation == "med":
        v = h.percentile(50)
    elif aggregation.startswith("p("):
        v = h.percentile(float(aggregation[2:-1]))
    else:
        raise ValueError(f"unknown trend aggregation {aggregation!r}")
    return v / scale


# --------------------------------------------------------------------------- hot path


@dataclass
class IntervalStats:
    """What one scenario did since the last timeline tick (live progress and reports)."""

    requests: int = 0
    failed: int = 0
    dropped: int = 0
    iterations: int = 0
    sent: int = 0
    received: int = 0
    hist: Histogram = field(default_factory=Histogram)

    def take(self) -> IntervalStats:
        """Return what was gathered and start afresh, in place (recorders keep a reference)."""
        out = IntervalStats(
            self.requests,
            self.failed,
            self.dropped,
            self.iterations,
            self.sent,
            self.received,
            self.hist,
        )
        self.requests = self.failed = self.dropped = self.iterations = self.sent = 0
        self.received = 0
        self.hist = Histogram()
        return out


def bucket_indices(values: Any) -> Any:
    """:func:`bucket_index` over a numpy int64 array (negative values count as 0)."""
    import numpy as np

    v = np.maximum(values, 0)
    idx = v.copy()
    big = v >= _LINEAR
    if big.any():
        vb = v[big]
        bits = np.frexp(vb.astype(np.float64))[1].astype(np.int64)  # == int.bit_length()
        shift = bits - (_SUB_BITS + 1)
        idx[big] = ((shift + 1) << _SUB_BITS) + (vb >> shift) - _SUB_HALF
    return idx


def fold_columns(hists: Sequence[Histogram], matrix: Any) -> None:
    """Record column j of an (N, k) int64 matrix into ``hists[j]``, all columns in one pass.

    Bucket keys of every column go through a single sort (column number in the high bits), so
    folding eight metrics costs about what one does; np.unique is avoided on purpose: its first
    call imports numpy.ma (~25 ms, in the middle of a run).
    """
    import numpy as np

    n, k = matrix.shape
    if n == 0:
        return
    clipped = np.maximum(matrix, 0)
    keys = (bucket_indices(clipped) + (np.arange(k, dtype=np.int64) << 40)).ravel()
    keys.sort()
    change = np.empty(len(keys), dtype=bool)
    change[0] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    uniq = keys[starts].tolist()
    counts = np.diff(np.append(starts, len(keys))).tolist()
    mask = (1 << 40) - 1
    for key, cnt in zip(uniq, counts, strict=True):
        c = hists[key >> 40].counts
        i = key & mask
        c[i] = c.get(i, 0) + cnt
    lows, highs, sums = clipped.min(0).tolist(), clipped.max(0).tolist(), clipped.sum(0).tolist()
    for h, lo, hi, total in zip(hists, lows, highs, sums, strict=True):
        if h.count == 0:
            h.min, h.max = lo, hi
        else:
            h.min, h.max = min(h.min, lo), max(h.max, hi)
        h.count += n
        h.total += total


class RequestSample(NamedTuple):
    """One request as every producer hands it to :meth:`RequestRecorder.record` — virtual
    devices and boards alike. Durations in integer µs, k6's phases: ``duration`` =
    sending + waiting + receiving (connecting excluded); ``corrected`` is measured from the
    scheduled start (coordinated omission). ``error`` is the index of the request's
    ``ErrorKind`` (``simulator.transport.KIND_INDEX``), 0 if it got an HTTP answer.

    A tuple, so the recorder appends it to its int64 buffer in one call: on the hot path a
    request costs one tuple, as before it had a name."""

    status: int
    failed: bool
    duration_us: int
    connecting_us: int
    sending_us: int
    waiting_us: int
    receiving_us: int
    corrected_us: int
    sent: int
    received: int
    error: int = 0


#: a RequestSample, then its end time (perf_counter_ns: the sample's time in ``--out json``/
#: ``csv`` streams, simulator.samples)
_ROW = len(RequestSample._fields) + 1


class RequestRecorder:
    """Records one request's metrics for a fixed (scenario, endpoint, kind, method).

    On the hot path a request is one tuple appended to a buffer; the buffer is folded into the
    histograms in bulk (vectorized) at each tick and before any read, which costs a fraction of
    recording eight histograms per request one by one. Each series carries k6's HTTP tags:
    ``name`` (the endpoint template unless the base tags say otherwise: bounded cardinality),
    ``proto``, and per outcome ``status``, ``expected_response``, ``error_code``, ``error``.
    """

    __slots__ = (
        "_reg",
        "_base",
        "_by_status",
        "_interval",
        "_sent",
        "_received",
        "pending",
        "rejected",
        "_data_tags",
        "_tags",
    )

    _NAMES = _HTTP_METRICS

    def __init__(self, reg: Registry, base: Tags, interval: IntervalStats, data_tags: Tags):
        self._reg = reg
        have = dict(base)
        extra = [("proto", "HTTP/1.1")] if "proto" not in have else []
        if "name" not in have and "endpoint" in have:
            extra.append(("name", have["endpoint"]))
        self._base = tuple(sorted((*base, *extra)))
        self._by_status: dict[int, tuple[Any, ...]] = {}
        self._interval = interval
        self._sent: Counter = reg.get("data_sent", data_tags)
        self._received: Counter = reg.get("data_received", data_tags)
        self._data_tags = data_tags
        self._tags: dict[int, Tags] = {}  # outcome key -> its series' tags (for the sink)
        self.pending = array("q")  # _ROW int64s per request, folded in bulk by flush()
        self.rejected = 0  # requests whose values did not fit (never recorded)
        reg.recorders.append(self)

    def _series(self, key: int) -> tuple[Any, ...]:
        """The series of one outcome, ``key`` = status·64 + failed·32 + error kind index."""
        s = self._by_status.get(key)
        if s is None:
            from simulator.transport import KIND_BY_INDEX, error_code

            status, failed, kind = key >> 6, key >> 5 & 1, KIND_BY_INDEX.get(key & 31)
            tags = [
                *self._base,
                ("status", str(status)),
                ("expected_response", "false" if failed else "true"),
            ]
            code = error_code(status, kind)
            if code:
                tags.append(("error_code", str(code)))
            if kind is not None:
                tags.append(("error", kind.tag))
            self._tags[key] = tuple(sorted(tags))
            s = tuple(self._reg.get(n, self._tags[key]) for n in self._NAMES)
            self._by_status[key] = s
        return s

    def record(self, sample: RequestSample) -> None:
        """One request (see :class:`RequestSample`).

        A value that does not fit an int64 (callers validate; this is the last guard) drops
        the whole request instead of leaving half a row that would misalign the buffer.
        """
        pending = self.pending
        try:
            pending.extend(sample)
        except (OverflowError, TypeError):
            _trim_partial_row(pending, _ROW)
            self.rejected += 1
            return
        pending.append(perf_counter_ns())

    def flush(self) -> None:
        import numpy as np

        buf, self.pending = self.pending, array("q")
        if not buf:
            return
        rows = np.frombuffer(buf, dtype=np.int64).reshape(-1, _ROW)
        iv = self._interval
        outcome = (rows[:, 0] << 6) + ((rows[:, 1] != 0) << 5) + (rows[:, 10] & 31)
        keys = sorted(set(outcome.tolist()))
        single = len(keys) == 1  # the usual case: one pass folds everything
        sink = self._reg.sink
        for key in keys:
            sub = rows if single else rows[outcome == key]
            reqs, fail, *trends = self._series(int(key))
            if sink is not None:
                sink.requests(self._tags[int(key)], self._data_tags, sub)
            n = len(sub)
            nfail = int(sub[:, 1].sum())
            reqs.value += n
            fail.total += n
            fail.passes += nfail
            iv.failed += nfail
            hists = [t.hist for t in trends]
            cols = sub[:, 2:8]
            if single:  # the interval's histogram rides in the same pass
                hists.append(iv.hist)
                cols = np.concatenate((cols, rows[:, 2:3]), axis=1)
            fold_columns(hists, cols)
        if not single:
            fold_columns([iv.hist], rows[:, 2:3])
        sent, received = int(rows[:, 8].sum()), int(rows[:, 9].sum())
        self._sent.value += sent
        self._received.value += received
        iv.sent += sent
        iv.received += received
        iv.requests += len(rows)


class IterationRecorder:
    """A scenario's iterations: count, ``iteration_duration`` and ``schedule_lag``, buffered
    and folded in bulk like requests."""

    __slots__ = (
        "_iterations",
        "_duration",
        "_lag",
        "_interval",
        "pending",
        "rejected",
        "_reg",
        "_tags",
        "_lag_tags",
    )

    def __init__(self, reg: Registry, tags: Tags, lag_tags: Tags, interval: IntervalStats):
        self._reg = reg
        self._tags, self._lag_tags = tags, lag_tags
        self._iterations: Counter = reg.get("iterations", tags)
        self._duration: Trend = reg.get("iteration_duration", tags)
        self._lag: Trend = reg.get("schedule_lag", lag_tags)
        self._interval = interval
        self.pending = array("q")  # (duration µs, lag µs, end perf_counter_ns) per iteration
        self.rejected = 0
        reg.recorders.append(self)

    def record(self, duration_us: int, lag_us: int) -> None:
        try:
            self.pending.extend((duration_us, lag_us, perf_counter_ns()))
        except (OverflowError, TypeError):
            _trim_partial_row(self.pending, 3)
            self.rejected += 1

    def flush(self) -> None:
        import numpy as np

        buf, self.pending = self.pending, array("q")
        if not buf:
            return
        rows = np.frombuffer(buf, dtype=np.int64).reshape(-1, 3)
        self._iterations.value += len(rows)
        self._interval.iterations += len(rows)
        fold_columns([self._duration.hist, self._lag.hist], rows[:, :2])
        if self._reg.sink is not None:
            self._reg.sink.iterations(self._tags, self._lag_tags, rows)


def _trim_partial_row(buf: array[int], width: int) -> None:
    """``array.extend`` appends item by item: drop what a failed extend left of its row."""
    extra = len(buf) % width
    if extra:
        del buf[len(buf) - extra :]


@dataclass(frozen=True)
class FailureRow:
    """Failed requests of one kind: by ``status`` and, with no answer, by ``error`` tag."""

    status: int
    error: str  # "" when the server answered (a 4xx/5xx or an unexpected status)
    error_code: int  # k6's code; 0 for an unexpected status below 400
    count: int


def failure_breakdown(reg: Registry) -> list[FailureRow]:
    """Every failed request counted once, grouped by reason and status, most frequent first."""
    reg.flush()
    counts: dict[tuple[int, str, int], int] = {}
    for (name, tags), s in reg.series.items():
        if name != "http_reqs" or not isinstance(s, Counter) or not s.value:
            continue
        t = dict(tags)
        if t.get("expected_response") != "false":
            continue
        key = (int(t.get("status", "0")), t.get("error", ""), int(t.get("error_code", "0")))
        counts[key] = counts.get(key, 0) + int(s.value)
    rows = [FailureRow(st, err, code, n) for (st, err, code), n in counts.items()]
    return sorted(rows, key=lambda r: (-r.count, r.status, r.error))


def start_accuracy(reg: Registry) -> dict[str, float] | None:
    """How far iteration starts were from their schedule (actual − scheduled, ms): p1, median,
    p99 and max of ``schedule_lag``. Nothing starts early, so p1 ≥ 0; None without samples."""
    m = reg.merged("schedule_lag")
    if not isinstance(m, Trend) or not m.hist.count:
        return None
    h = m.hist
    return {
        "min_ms": h.min / 1000,
        "p1_ms": h.percentile(1) / 1000,
        "p50_ms": h.percentile(50) / 1000,
        "p99_ms": h.percentile(99) / 1000,
        "max_ms": h.max / 1000,
        "count": h.count,
    }


def tags_of(pairs: Iterable[tuple[str, str]]) -> Tags:
    return tuple(sorted(pairs))
