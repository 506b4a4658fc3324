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

from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from simulator.metrics.histogram import Histogram

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from simulator.metrics.thresholds import Threshold

Tags = tuple[tuple[str, str], ...]


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
M = TypeVar("M", Counter, Rate, Gauge, Trend)


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
    "http_req_blocked": ("trend", "time"),
    "http_req_corrected_duration": ("trend", "time"),
    "http_req_failed": ("rate", "default"),
    "iterations": ("counter", "default"),
    "iteration_duration": ("trend", "time"),
    "schedule_lag": ("trend", "time"),
    "dropped_iterations": ("counter", "default"),
    "interrupted_iterations": ("counter", "default"),
    "iteration_errors": ("counter", "default"),  # a Python device's method raised/returned False
    "vus": ("gauge", "default"),
    "vus_max": ("gauge", "default"),
    "data_sent": ("counter", "data"),
    "data_received": ("counter", "data"),
    "checks": ("rate", "default"),
    "boards_lost": ("counter", "default"),
    "boards_rejoined": ("counter", "default"),
    # k6's other built-ins, which no scfleet run records: k6 1.1 takes a threshold on each and
    # judges it as an empty one (trends 0, counters 0), as here; they were refused (exit 104).
    # The TLS handshake over HTTPS is in http_req_connecting (a threshold on it is refused
    # there, sections.py); over plain HTTP k6's is 0, what an empty trend reads.
    "http_req_tls_handshaking": ("trend", "time"),
    "group_duration": ("trend", "time"),
    "ws_sessions": ("counter", "default"),
    "ws_msgs_sent": ("counter", "default"),
    "ws_msgs_received": ("counter", "default"),
    "ws_ping": ("trend", "time"),
    "ws_session_duration": ("trend", "time"),
    "ws_connecting": ("trend", "time"),
    "grpc_req_duration": ("trend", "time"),
}


#: Tag keys on every HTTP sample (k6's system tags, plus scfleet's ``endpoint`` and ``kind``);
#: ``error_code`` appears on failures and 4xx/5xx answers, ``error`` when there was no answer
#: (and ``sequence-conflict`` on a 409 to a request carrying X-Sequence).
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
    "http_req_blocked",
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
    "iteration_errors": frozenset({"scenario", "kind"}),
    "vus": frozenset(),
    "vus_max": frozenset(),
    "boards_lost": frozenset({"kind"}),
    "boards_rejoined": frozenset({"kind"}),
}


_USER_TAGGED = frozenset({*_HTTP_METRICS, "data_sent", "data_received", "iterations"})

#: Tag keys whose values the engine writes from a closed set (``recorders.RequestRecorder``,
#: the boards' recorder): a filter on any other value matches no sample and passes.
CLOSED_TAG_VALUES: dict[str, tuple[str, ...]] = {
    "expected_response": ("true", "false"),
    "kind": ("virtual", "physical"),
    "proto": ("HTTP/1.1",),
}
#: Tag keys whose values are whole numbers (an HTTP status, 0 for no answer; k6's error_code).
NUMERIC_TAG_VALUES = frozenset({"status", "error_code"})


def _bad_tag_value(key: str, value: str) -> str | None:
    """Why a filter's value can match no sample of the engine's, or None."""
    if key in NUMERIC_TAG_VALUES and not value.isdecimal():
        if key == "status":
            return (
                f"status is a whole number such as 500, got {value!r} (no patterns such as "
                "5xx: filter on expected_response:false)"
            )
        return f"error_code is a whole number such as 1500, got {value!r}"
    if key == "method" and value != value.upper():  # every recorder writes it upper-case
        return (
            f"no sample carries method {value!r}: methods are recorded upper-case (did you "
            f"mean {value.upper()}?)"
        )
    allowed = CLOSED_TAG_VALUES.get(key)
    if key == "error":  # no answer (one of the transports' kinds), or a sequence conflict
        from simulator.http.errors import ErrorKind

        allowed = tuple(k.tag for k in ErrorKind)
    if allowed is not None and value not in allowed:
        import difflib

        near = [a for a in allowed if a.lower() == value.lower()] or difflib.get_close_matches(
            value, allowed, n=1, cutoff=0.6
        )
        hint = f"did you mean {near[0]}?" if near else f"its values: {', '.join(allowed)}"
        return f"no sample carries {key} {value!r} ({hint})"
    return None


def check_threshold_tag_keys(
    thresholds: Iterable[Threshold], user_keys: Iterable[str], source: str | None = None
) -> None:
    """Refuse a threshold whose tag filter names a key its metric never carries, or a value the
    engine never writes for it (exit 104): ``http_req_duration{expected:true}`` or
    ``http_req_failed{expected_response:True}`` would match no sample and pass — a false green.
    Keys of a scenario's own ``tags`` (``user_keys``) take any value."""
    import difflib

    from scfleet_core.errors import ConfigError

    extra = frozenset(user_keys)
    for th in thresholds:
        known = RECORDED_TAG_KEYS.get(th.metric)
        if known is None:
            continue  # not a metric this table describes; its own validation covers it
        if th.metric in _USER_TAGGED:
            known = known | extra
        for key, value in th.tags:
            if key in known:
                why = None if key in extra else _bad_tag_value(key, value)
                if why is not None:
                    raise ConfigError(why, source=source, key=f'thresholds."{th.metric_key}"')
                continue
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}?" if near else f"recorded: {', '.join(sorted(known))}"
            raise ConfigError(
                f"no {th.metric} sample carries a tag {key!r} ({hint})",
                source=source,
                key=f'thresholds."{th.metric_key}"',
            )


class Recorder(Protocol):
    """A hot-path recorder (simulator.metrics.recorders): a buffer the registry folds."""

    @property
    def pending(self) -> array[int]: ...

    def flush(self) -> None: ...

    def fold_steps(self) -> Iterator[None]:
        """``flush()`` in steps the caller may yield to the event loop between."""
        ...


class RowSink(Protocol):
    """Where the recorders hand their buffered rows as they fold them (once per flush, never
    per request): ``simulator.report.streams.PointWriter`` for ``--out json=``/``csv=``."""

    def requests(self, tags: Tags, data_tags: Tags, rows: NDArray[np.int64]) -> None: ...

    def iterations(self, tags: Tags, lag_tags: Tags, rows: NDArray[np.int64]) -> None: ...

    def tick(self, registry: Registry, gauges: Iterable[tuple[str, float]] = ()) -> None:
        """Once per tick (the runner): what the registry keeps only as totals, and gauges."""


class Registry:
    """Every series of a run, keyed by (metric name, sorted tags)."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, Tags], MetricValue] = {}
        self.recorders: list[Recorder] = []
        self.types: dict[str, str] = {k: v[0] for k, v in BUILTIN.items()}
        self.contains: dict[str, str] = {k: v[1] for k, v in BUILTIN.items()}
        #: Receives every buffered row as it is folded (``--out json/csv``: report.streams)
        self.sink: RowSink | None = None

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

    def typed(self, kind: type[M], name: str, tags: Mapping[str, str] | Tags = ()) -> M:
        """:meth:`get` for a caller that knows the metric's type (the seams: runner, boards);
        a metric of another type is a TypeError naming both, never a wrong series."""
        s = self.get(name, tags)
        if not isinstance(s, kind):
            raise TypeError(f"metric {name!r} is a {type(s).__name__}, not a {kind.__name__}")
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

    def fold_steps(self) -> Iterator[None]:
        """:meth:`flush` in short steps (one histogram each), for the per-second tick to
        yield to the event loop between: arrivals due meanwhile start on time. Whoever stops
        iterating early must still exhaust it (the rows are taken when a recorder starts)."""
        for rec in self.recorders:
            if rec.pending:
                yield from rec.fold_steps()

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
            return trend_stat(m.hist, aggregation)
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


#: A trend's histogram holds integer thousandths of its reported unit: µs for time trends
#: (reported in ms), 0.001 for the others — so a custom Trend keeps fractions (a 0..1 score).
TREND_SCALE = 1000.0


def trend_stat(h: Histogram, aggregation: str) -> float:
    scale = TREND_SCALE
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
    #: iterations a stop cut (k6's interrupted_iterations): the stage table judges them, as
    #: their requests are in no other figure
    interrupted: int = 0
    #: of those, cut while sleeping their think time (every request answered): in k6's count,
    #: not in the stage table's cut budget nor the gate's
    think_cut: int = 0
    #: iterations whose Python device raised or returned False: judged by the stage table as
    #: failed requests are (a run whose every iteration raised sent nothing, and read "held")
    iteration_errors: int = 0
    #: of ``dropped``, those that found every device busy at the pool's maximum
    #: (``max_devices``): a configuration limit, not a generator behind its schedule
    pool_full: int = 0

    def take(self) -> IntervalStats:
        """Return what was gathered and start afresh, in place (recorders keep a reference).
        The histogram's part is its one delta mechanism (``take_fresh``): all it holds, after
        which its folds and merges only keep their bucket arrays until the next take."""
        out = IntervalStats(
            self.requests,
            self.failed,
            self.dropped,
            self.iterations,
            self.sent,
            self.received,
            self.hist.take_fresh(keep=False),
            self.interrupted,
            self.think_cut,
            self.iteration_errors,
            self.pool_full,
        )
        self.requests = self.failed = self.dropped = self.iterations = self.sent = 0
        self.received = self.interrupted = self.think_cut = self.iteration_errors = 0
        self.pool_full = 0
        return out


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
