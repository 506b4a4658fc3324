"""HDR-style log-linear histograms of integer microseconds: about three significant digits
(relative error < 0.1 %), memory bounded by the value range, not the sample count; exact merges;
bulk (vectorized) folding of buffered columns."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import add
from typing import Any

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


class Histogram:
    """HDR-style histogram of integer values (µs); exact count, sum, min and max.

    Once a consumer has called :meth:`take_fresh`, every mutation also keeps what it added,
    so the next per-tick delta costs the buckets touched since, not a diff of every bucket
    ever seen (which grew with the run and held the event loop for milliseconds each tick).
    One consumer per histogram."""

    __slots__ = ("counts", "count", "total", "min", "max", "_fresh")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0
        self._fresh: dict[int, int] | None = None  # None: nobody takes deltas

    def take_fresh(self) -> dict[int, int]:
        """The bucket counts added since the previous call (all of them at the first call):
        O(1), the adding was done as the counts were (in the tick's fold steps)."""
        fresh, self._fresh = self._fresh, {}
        return dict(self.counts) if fresh is None else fresh

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
        f = self._fresh
        if f is not None:
            f[idx] = f.get(idx, 0) + 1
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
        keys, adds = tuple(other.counts), tuple(other.counts.values())
        _add_counts(self.counts, keys, adds)
        if self._fresh is not None:
            _add_counts(self._fresh, keys, adds)
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
    counts = np.diff(np.append(starts, len(keys))).tolist()
    # each column's buckets are one run of the sorted keys: add them to its histogram in C
    bounds = np.searchsorted(uniq, np.arange(k + 1, dtype=np.int64) << 40).tolist()
    idx = (uniq & ((1 << 40) - 1)).tolist()
    for j, h in enumerate(hists):
        a, b = bounds[j], bounds[j + 1]
        if a < b:
            keys, adds = idx[a:b], counts[a:b]
            _add_counts(h.counts, keys, adds)
            if h._fresh is not None:
                _add_counts(h._fresh, keys, adds)
    lows, highs, sums = clipped.min(0).tolist(), clipped.max(0).tolist(), clipped.sum(0).tolist()
    for h, lo, hi, total in zip(hists, lows, highs, sums, strict=True):
        if h.count == 0:
            h.min, h.max = lo, hi
        else:
            h.min, h.max = min(h.min, lo), max(h.max, hi)
        h.count += n
        h.total += total
