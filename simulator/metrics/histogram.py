"""HDR-style log-linear histograms of integer microseconds: about three significant digits
(relative error < 0.1 %), memory bounded by the value range, not the sample count; exact merges;
bulk (vectorized) folding of buffered columns."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import add
from typing import Any, cast

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


def _add_counts(counts: dict[int, int], keys: Sequence[int], adds: Sequence[int]) -> None:
    """``counts[k] += n`` for each pair, in C iterators (no bytecode per bucket)."""
    counts.update(zip(keys, map(add, map(counts.get, keys, repeat(0)), adds), strict=True))


#: Bucket counts as two parallel int64 arrays (bucket indices, each once; their counts), in the
#: order the buckets were first touched: how deltas travel and are journaled, with no Python
#: object per bucket. A journal that also wrote them into its dict keeps the lists it made.
Chunk = tuple[Any, Any]


def _listed(values: Any) -> Sequence[int]:
    if isinstance(values, list | tuple):
        return values
    return cast("list[int]", values.tolist())


#: Single records held before they are added as one chunk: bounded memory with no reader (at
#: 4,096, a one-process run of 40,500 idle devices peaked 1.4 MB higher: one int per record).
_MAX_SINGLES = 256

#: Chunks a journal holds before they are compacted into one (a consumer that seldom takes).
_MAX_CHUNKS = 64


def _compact(chunks: Sequence[Chunk]) -> Chunk:
    """One chunk of several: counts of a bucket summed, buckets in first-touch order (the
    order a dict updated chunk by chunk would have), vectorised."""
    import numpy as np

    if len(chunks) == 1:
        idx, cnt = chunks[0]
        return np.asarray(idx, np.int64), np.asarray(cnt, np.int64)
    if not chunks:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return _reduce(np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]))


def _reduce(idx: Any, cnt: Any) -> Chunk:
    """Parallel arrays whose indices may repeat, as a chunk (see :func:`_compact`)."""
    import numpy as np

    order = np.argsort(idx, kind="stable")  # stable: a bucket's first index is its first touch
    s = idx[order]
    change = np.empty(len(s), dtype=bool)
    change[:1] = True
    np.not_equal(s[1:], s[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    sums = np.add.reduceat(cnt[order], starts) if len(starts) else cnt[:0]
    first = np.argsort(order[starts])
    return s[starts][first], sums[first]


#: the largest value of each packed dtype (``np.iinfo(t).max``: built anew at each call)
_TOPS = {"<u1": 2**8 - 1, "<u2": 2**16 - 1, "<u4": 2**32 - 1, "<i8": 2**63 - 1}


def _packed(values: Any, dtypes: Sequence[str]) -> str:
    """The narrowest of ``dtypes`` (unsigned, then ``<i8``) that holds every value."""
    top = int(values.max()) if len(values) else 0
    return next((t for t in dtypes if top <= _TOPS[t]), "<i8")


def _chunk_of(counts: Mapping[int, int]) -> Chunk:
    import numpy as np

    n = len(counts)
    return np.fromiter(counts.keys(), np.int64, n), np.fromiter(counts.values(), np.int64, n)


class _Dense:
    """A histogram's running totals as a dense array by bucket index, and the order buckets
    were first touched in: adding a chunk is a few array operations (no sort, no write per
    bucket in Python), however long the run; the coordinator adds ~16 chunks a second."""

    __slots__ = ("tot", "seen", "order")

    def __init__(self) -> None:
        import numpy as np

        self.tot = np.zeros(0, np.int64)
        self.seen = np.zeros(0, bool)
        self.order: list[Any] = []  # arrays of bucket indices, each first touched there

    def add(self, idx: Any, cnt: Any) -> None:
        import numpy as np

        idx, cnt = np.asarray(idx, np.int64), np.asarray(cnt, np.int64)
        if not len(idx):
            return
        top = int(idx.max()) + 1
        if top > len(self.tot):
            size = max(top, 2 * len(self.tot))
            self.tot = np.concatenate([self.tot, np.zeros(size - len(self.tot), np.int64)])
            self.seen = np.concatenate([self.seen, np.zeros(size - len(self.seen), bool)])
        new = idx[~self.seen[idx]]  # a chunk holds each bucket once
        if len(new):
            self.seen[new] = True
            self.order.append(new)
        self.tot[idx] += cnt

    def chunk(self) -> Chunk:
        import numpy as np

        if len(self.order) > 1:
            self.order = [np.concatenate(self.order)]
        order = self.order[0] if self.order else np.empty(0, np.int64)
        return order, self.tot[order]


class Histogram:
    """HDR-style histogram of integer values (µs); exact count, sum, min and max.

    Buckets are added as chunks (a :data:`Chunk`: two arrays, one list append per fold or
    merge, never a write per bucket) and read into a dict only when someone reads
    :attr:`counts` (a report at the end); percentiles and snapshots work on the arrays.
    Per-tick deltas have one home, :meth:`take_fresh`, for both consumers (the run stream's
    tick line and a worker's snapshot): once it has been called, each chunk added is also
    journaled for the next take, so a tick's delta costs the buckets touched since, not a
    diff of every bucket ever seen. ``take_fresh(keep=False)`` (a worker, whose histograms
    are only read through their deltas) hands everything over and starts empty. A histogram
    pickles as two arrays of bytes (no Python object per bucket to build or unpickle).
    One consumer per histogram."""

    __slots__ = (
        "_counts",
        "count",
        "total",
        "min",
        "max",
        "_pending",
        "_singles",
        "_fresh",
        "_keep",
        "_since",
        "_fmin",
        "_fmax",
        "_dense",
    )

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0
        self._pending: list[Chunk] = []  # held here, not yet in ``_counts``
        self._singles: list[int] = []  # bucket of each record() not yet in a chunk
        self._fresh: list[Chunk] | None = None  # None: nobody takes deltas
        self._keep = True  # False: a taker holds the totals (the histogram starts empty)
        self._since = (0, 0)  # count and total at the last take
        self._fmin = self._fmax = 0  # min and max since the last take
        self._dense: _Dense | None = None  # totals added since the dict was last built

    # -- the buckets --------------------------------------------------------------------

    @property
    def counts(self) -> dict[int, int]:
        """Bucket index -> count (what a delta or an unpickled histogram holds as arrays is
        read into the dict here, once)."""
        self._settle()
        return self._counts

    @counts.setter
    def counts(self, value: dict[int, int]) -> None:
        self._counts = value
        self._pending = []
        self._singles = []
        self._dense = None

    def _parts(self) -> list[Chunk]:
        """Every bucket held, as chunks in the order they were added (the dict's, if one was
        built, first)."""
        parts = [_chunk_of(self._counts)] if self._counts else []
        if self._dense is not None:
            parts.append(self._dense.chunk())
        return parts + self._pending

    def _settle(self) -> None:
        if self._singles:
            self._flush_singles()
        pending, self._pending = self._pending, []
        if self._dense is not None:
            pending.insert(0, self._dense.chunk())
            self._dense = None
        for idx, cnt in pending:  # chunk by chunk: first-touch order, no sort
            keys, adds = _listed(idx), _listed(cnt)
            if self._counts:
                _add_counts(self._counts, keys, adds)
            else:  # the first (a delta read whole): built in one go
                self._counts = dict(zip(keys, adds, strict=True))

    def _flush_singles(self) -> None:
        import numpy as np

        singles, self._singles = self._singles, []
        self._add(*_reduce(np.array(singles, np.int64), np.ones(len(singles), np.int64)))

    def _add(self, idx: Any, cnt: Any) -> None:
        """Add one chunk of buckets (each bucket once): into the dense totals (no write per
        bucket in Python; the dict is built when someone reads :attr:`counts`), or, handed
        over (``keep=False``), held as it is for the taker; and kept for the next take when
        journaling."""
        if self._singles:
            self._flush_singles()
        chunk = (idx, cnt)
        if self._keep:
            dense = self._dense
            if dense is None:
                dense = self._dense = _Dense()
            if self._pending:  # held before (an unpickled delta): added first, in order
                for held in self._pending:
                    dense.add(*held)
                self._pending = []
            dense.add(idx, cnt)
        else:
            self._pending.append(chunk)
            if len(self._pending) > _MAX_CHUNKS:
                self._pending = [_compact(self._pending)]
        fresh = self._fresh
        if fresh is not None and self._keep:
            fresh.append(chunk)
            if len(fresh) > _MAX_CHUNKS:
                self._fresh = [_compact(fresh)]

    def _stats(self, n: int, total: int, lo: int, hi: int) -> None:
        if self.count == self._since[0]:
            self._fmin, self._fmax = lo, hi
        else:
            self._fmin, self._fmax = min(self._fmin, lo), max(self._fmax, hi)
        if self.count == 0:
            self.min, self.max = lo, hi
        else:
            self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.count += n
        self.total += total

    def take_fresh(self, keep: bool = True) -> Histogram:
        """What was added since the previous call (all of it at the first call), as a
        histogram of its own (its buckets still as arrays): O(chunks), the adding was done as
        the counts were (in the tick's fold steps). ``keep=False``: this histogram is only
        read through its deltas (a worker's registry): it gives all it holds and starts
        empty, and keeps no dict from then on."""
        out = Histogram()
        if not keep:
            if self._singles:
                self._flush_singles()
            out._counts, out._pending = self._counts, self._parts()[1 if self._counts else 0 :]
            self._dense = None  # handed over as is (the dense totals as a chunk)
            out.count, out.total, out.min, out.max = self.count, self.total, self.min, self.max
            self._counts, self._pending, self._fresh, self._keep = {}, [], None, False
            self.count = self.total = self.min = self.max = 0
            self._since = (0, 0)
            return out
        fresh = self._fresh
        if fresh is None or not self._keep:  # the first take: everything so far
            self._keep = True
            if self._singles:
                self._flush_singles()
            parts = self._parts()
            fresh = [_compact(parts)] if parts else []
            self._since = (0, 0)
            self._fmin, self._fmax = self.min, self.max
        elif self._singles:
            self._flush_singles()
            fresh = self._fresh or []
        self._fresh = []
        out._pending = fresh
        n, total = self._since
        out.count, out.total = self.count - n, self.total - total
        if out.count:
            out.min, out.max = self._fmin, self._fmax
        self._since = (self.count, self.total)
        return out

    def bucket_arrays(self) -> Chunk:
        """Every bucket as two int64 arrays (indices, counts), in the order the buckets were
        first touched (the order :attr:`counts` has), without building the dict."""
        if self._singles:
            self._flush_singles()
        return _compact(self._parts())

    # -- pickling: two arrays of bytes ---------------------------------------------------

    def compact(self) -> None:
        """Hold every bucket as the one chunk pickling would build, now. A worker compacts
        its snapshot's histograms one per loop turn, so the send's pickle only packs arrays
        (it was one 0.5-1.6 ms callback). The pickle is the same, byte for byte: the same
        parts are compacted in the same order."""
        if self._singles:
            self._flush_singles()
        parts = self._parts()
        if len(parts) > 1 or self._counts or self._dense is not None:
            self._pending = [_compact(parts)]
            self._counts, self._dense = {}, None

    def __getstate__(self) -> tuple[int, bytes, bytes, int, int, int, int]:
        """Buckets as packed little-endian arrays (indices as uint16, counts in 1, 2 or 4
        bytes, when they fit): a few bytes per bucket and O(1) pickle opcodes; the taker's
        journal is not sent."""

        if self._singles:
            self._flush_singles()
        idx, cnt = _compact(self._parts())
        n = len(idx)
        return (
            n,
            idx.astype(_packed(idx, ("<u2", "<i8"))).tobytes(),
            cnt.astype(_packed(cnt, ("<u1", "<u2", "<u4", "<i8"))).tobytes(),
            self.count,
            self.total,
            self.min,
            self.max,
        )

    def __setstate__(self, state: tuple[int, bytes, bytes, int, int, int, int]) -> None:
        import numpy as np

        n, idx, cnt, count, total, lo, hi = state
        self._counts, self._pending, self._singles, self._fresh = {}, [], [], None
        self._keep, self._since, self._fmin, self._fmax = True, (0, 0), 0, 0
        self._dense = None
        if n:
            i = np.frombuffer(idx, f"<{'u' if len(idx) < 8 * n else 'i'}{len(idx) // n}")
            c = np.frombuffer(cnt, f"<{'u' if len(cnt) < 8 * n else 'i'}{len(cnt) // n}")
            i, c = i.astype(np.int64), c.astype(np.int64)
            self._pending = [(i, c)]
        self.count, self.total, self.min, self.max = count, total, lo, hi

    # -- recording ----------------------------------------------------------------------

    def record(self, value: int) -> None:
        if value < 0:
            value = 0
        if value < _LINEAR:
            idx = value
        else:
            shift = value.bit_length() - (_SUB_BITS + 1)
            idx = ((shift + 1) << _SUB_BITS) + (value >> shift) - _SUB_HALF
        singles = self._singles
        singles.append(idx)
        if len(singles) >= _MAX_SINGLES:
            self._flush_singles()
        self._stats(1, value, value, value)

    def merge(self, other: Histogram) -> None:
        if other.count == 0:
            return
        if other._singles:
            other._flush_singles()
        for idx, cnt in other._parts():
            self._add(idx, cnt)
        self._stats(other.count, other.total, other.min, other.max)

    def percentile(self, pct: float) -> float:
        """Value at a percentile (0..100) as k6 computes it (``TrendSink.P``): the rank
        i = pct/100 · (count − 1), interpolated linearly between the values at its two nearest
        ranks, each value as HDR reports it (highest equivalent value, clamped to the exact min
        and max). The nearest rank alone read p(95) of 20 requests, one of them 1 s and the
        rest ~45 ms, as 48 ms where k6 says 135 ms: ``p(95)<50`` passed here, failed in k6."""
        if self.count == 0:
            return 0.0
        if pct <= 0:
            return float(self.min)
        if pct >= 100:
            return float(self.max)
        i = pct / 100 * (self.count - 1)
        below = math.floor(i)
        frac = i - below
        if frac == 0:
            return self._at_ranks((below + 1,))[0]
        lo, hi = self._at_ranks((below + 1, below + 2))
        return lo + (hi - lo) * frac

    def _at_ranks(self, ranks: tuple[int, ...]) -> list[float]:
        """The values at 1-based ``ranks`` (highest equivalent value, clamped to min/max)."""
        import numpy as np

        if self._singles:
            self._flush_singles()
        dense = self._dense
        if dense is not None and not self._counts and not self._pending:  # the totals
            cum = np.cumsum(dense.tot)
            out = []
            for rank in ranks:
                at = int(np.searchsorted(cum, rank))
                hi = bucket_bounds(at)[1] if at < len(dense.tot) else self.max
                out.append(float(min(max(hi, self.min), self.max)))
            return out
        idx, cnt = _compact(self._parts())  # vectorised: no dict built or walked
        if not self._counts and self._dense is None:
            self._pending = [(idx, cnt)]
        order = np.argsort(idx)
        cum = np.cumsum(cnt[order])
        out = []
        for rank in ranks:
            at = int(np.searchsorted(cum, rank))
            hi = bucket_bounds(int(idx[order[at]]))[1] if at < len(order) else self.max
            out.append(float(min(max(hi, self.min), self.max)))
        return out

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
    uniq = keys[starts]
    counts = np.diff(np.append(starts, len(keys)))
    # each column's buckets are one run of the sorted keys: added to its histogram as a chunk
    bounds = np.searchsorted(uniq, np.arange(k + 1, dtype=np.int64) << 40).tolist()
    idx = uniq & ((1 << 40) - 1)
    for j, h in enumerate(hists):
        a, b = bounds[j], bounds[j + 1]
        if a < b:
            h._add(idx[a:b], counts[a:b])
    lows, highs, sums = clipped.min(0).tolist(), clipped.max(0).tolist(), clipped.sum(0).tolist()
    for h, lo, hi, total in zip(hists, lows, highs, sums, strict=True):
        h._stats(n, total, lo, hi)
