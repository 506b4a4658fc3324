"""The hot-path recorders: one request (a :class:`RequestSample`, from virtual devices and
boards alike) or one iteration is a few int64s appended to a buffer, folded into the registry's
histograms in bulk at each tick and before any read."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any, NamedTuple

from simulator.metrics.histogram import Histogram, fold_columns
from simulator.metrics.registry import _HTTP_METRICS, Counter, IntervalStats, Registry, Tags, Trend


class RequestSample(NamedTuple):
    """One request as every producer hands it to :meth:`RequestRecorder.record` — virtual
    devices and boards alike. Durations in integer µs, k6's phases: ``duration`` =
    sending + waiting + receiving (blocked and connecting excluded); ``corrected`` is measured
    from the scheduled start (coordinated omission); ``blocked`` is the wait for a connection
    (a freed one, or before its dial started). ``error`` is the index of the request's
    ``ErrorKind`` (``simulator.http.errors.KIND_INDEX``), 0 if it got an HTTP answer.

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
    blocked_us: int = 0  # last, with a default: a board has no connection of its own to wait for


#: each per-request metric's column in a request row (its RequestSample field): the one home
#: of the row's layout, read by the fold here and by ``--out json``/``csv``
#: (simulator.report.streams)
REQUEST_COLUMNS: dict[str, int] = {
    metric: RequestSample._fields.index(field)
    for metric, field in (
        ("http_req_failed", "failed"),
        ("http_req_duration", "duration_us"),
        ("http_req_connecting", "connecting_us"),
        ("http_req_sending", "sending_us"),
        ("http_req_waiting", "waiting_us"),
        ("http_req_receiving", "receiving_us"),
        ("http_req_corrected_duration", "corrected_us"),
        ("http_req_blocked", "blocked_us"),
        ("data_sent", "sent"),
        ("data_received", "received"),
    )
}
#: the column of each trend in _HTTP_METRICS[2:], in that order
_TREND_COLUMNS = tuple(REQUEST_COLUMNS[m] for m in _HTTP_METRICS[2:])
#: after a RequestSample's fields, its end time (perf_counter_ns: the sample's time in
#: ``--out json``/``csv`` streams)
END_COLUMN = len(RequestSample._fields)
_ROW = END_COLUMN + 1


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

    def cut_sent(self, nbytes: int) -> None:
        """The written bytes of a request cut before its answer (a graceful stop or ramp-down
        ended its iteration): in ``data_sent``, as k6 counts them, and in no other figure."""
        self._sent.value += nbytes
        self._interval.sent += nbytes

    def _series(self, key: int) -> tuple[Any, ...]:
        """The series of one outcome, ``key`` = status·64 + failed·32 + error kind index."""
        s = self._by_status.get(key)
        if s is None:
            from simulator.http import KIND_BY_INDEX, error_code

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
        for _ in self.fold_steps():
            pass

    def fold_steps(self) -> Iterator[None]:
        """:meth:`flush` in steps of one histogram each: the runner's tick yields to the event
        loop between them, so folding a second of rows never holds the schedule (at 8,000/s
        one fold was ~10 ms: every arrival due meanwhile started that late). A caller that
        stops early must finish the steps (the rows are taken at the first)."""
        import numpy as np

        buf, self.pending = self.pending, array("q")
        if not buf:
            return
        rows = np.frombuffer(buf, dtype=np.int64).reshape(-1, _ROW)
        iv = self._interval
        outcome = (rows[:, 0] << 6) + ((rows[:, 1] != 0) << 5) + (rows[:, 10] & 31)
        first = int(outcome[0])
        single = not (outcome != first).any()  # the usual case: no split by outcome
        keys = [first] if single else sorted(set(outcome.tolist()))
        sink = self._reg.sink
        sent, received = int(rows[:, 8].sum()), int(rows[:, 9].sum())
        self._sent.value += sent
        self._received.value += received
        iv.sent += sent
        iv.received += received
        iv.requests += len(rows)
        yield  # the rows' outcomes and sums: a step of their own (~0.6 ms at 4,750 rows, busy)
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
            for col, trend in zip(_TREND_COLUMNS, trends, strict=True):
                yield from _fold_column(trend.hist, sub, col)
        # its own steps, not riding in the duration's pass: that made a step of 2 columns
        # (~1 ms at 4,750 rows, busy), no cheaper than two of one
        yield from _fold_column(iv.hist, rows, 2)


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
        for _ in self.fold_steps():
            pass

    def fold_steps(self) -> Iterator[None]:
        """:meth:`flush` in steps of one histogram each (see RequestRecorder.fold_steps)."""
        import numpy as np

        buf, self.pending = self.pending, array("q")
        if not buf:
            return
        rows = np.frombuffer(buf, dtype=np.int64).reshape(-1, 3)
        self._iterations.value += len(rows)
        self._interval.iterations += len(rows)
        if self._reg.sink is not None:
            self._reg.sink.iterations(self._tags, self._lag_tags, rows)
        yield from _fold_column(self._duration.hist, rows, 0)
        yield from _fold_column(self._lag.hist, rows, 1)


#: The most rows one fold step folds into a histogram (one column): a step of 8,192 rows takes
#: ~0.6 ms of CPU (busy); a larger buffer (one process past 8,000/s) folds in slices.
FOLD_ROWS = 8192


def _fold_column(hist: Histogram, rows: Any, col: int) -> Iterator[None]:
    """Column ``col`` of ``rows`` into ``hist``, at most :data:`FOLD_ROWS` rows a step: the
    tick yields to the event loop between steps, so no fold holds the schedule long."""
    for lo in range(0, len(rows), FOLD_ROWS):
        fold_columns([hist], rows[lo : lo + FOLD_ROWS, col : col + 1])
        yield


def _trim_partial_row(buf: array[int], width: int) -> None:
    """``array.extend`` appends item by item: drop what a failed extend left of its row."""
    extra = len(buf) % width
    if extra:
        del buf[len(buf) - extra :]
