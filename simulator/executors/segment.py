"""Execution segments (k6's ``lib/execution_segment.go``): one run split into parts that
together are exactly the one-process run.

A :class:`SegmentSequence` cuts [0, 1] at rational points; segment *j* is [b_j, b_{j+1}).
Indivisible things — the i-th iteration of an arrival-rate schedule, the i-th device — are
*striped* over the segments: within a cycle of ``L`` positions (the least common denominator
of the cut points) each segment owns ``length × L`` positions, spread as evenly as the cycle
allows, and index i belongs to the segment that owns position ``i mod L``. So every segment
takes its share of every stretch of the schedule (same total, same timing), and an index
belongs to exactly one segment, which is what keeps device identity global: device n is made
by the one segment that owns n, with the same ID, audio and sequence numbers as in a
one-process run.

The spreading rule here (give each position to the segment furthest behind its share; ties to
the earlier segment) is this project's own; like k6's, it is deterministic, so every worker
works out its own share from the sequence and its index alone.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise


@dataclass(frozen=True)
class Segment:
    """One part of a run: the indices (iterations, devices) it owns, striped over a cycle."""

    index: int
    start: Fraction
    end: Fraction
    cycle: int  # L: positions repeat every L indices
    positions: tuple[int, ...]  # the positions in [0, L) this segment owns, ascending

    @property
    def length(self) -> Fraction:
        return self.end - self.start

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end == 1

    def owns(self, i: int) -> bool:
        p = i % self.cycle
        k = bisect.bisect_left(self.positions, p)
        return k < len(self.positions) and self.positions[k] == p

    def scale(self, n: int) -> int:
        """How many of the indices 0 … n−1 this segment owns (k6's ``Scale``): the segment's
        share of ``n`` devices or iterations; the shares of a sequence sum to ``n``."""
        full, rest = divmod(n, self.cycle)
        return full * len(self.positions) + bisect.bisect_left(self.positions, rest)

    def nth(self, k: int) -> int:
        """The global index of this segment's k-th (from 0) index."""
        full, rest = divmod(k, len(self.positions))
        return full * self.cycle + self.positions[rest]

    def indices(self, n: int) -> Iterator[int]:
        """The global indices below ``n`` this segment owns, ascending."""
        return (self.nth(k) for k in range(self.scale(n)))

    def __str__(self) -> str:
        return f"{self.start}:{self.end}"


@dataclass(frozen=True)
class SegmentSequence:
    """Cut points 0 = b_0 < b_1 < … < b_n = 1 (k6's ``--execution-segment-sequence``)."""

    bounds: tuple[Fraction, ...]

    def __post_init__(self) -> None:
        b = self.bounds
        if len(b) < 2 or b[0] != 0 or b[-1] != 1 or any(x >= y for x, y in pairwise(b)):
            raise ValueError(
                "an execution segment sequence runs from 0 to 1 in increasing steps, "
                f"got {','.join(str(x) for x in b)}"
            )

    @classmethod
    def even(cls, parts: int) -> SegmentSequence:
        """``parts`` equal segments (one per worker)."""
        if parts < 1:
            raise ValueError(f"a run splits into at least 1 segment, got {parts}")
        return cls(tuple(Fraction(k, parts) for k in range(parts + 1)))

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def segments(self) -> list[Segment]:
        cycle = math.lcm(*(b.denominator for b in self.bounds))
        lengths = [y - x for x, y in pairwise(self.bounds)]
        owned: list[list[int]] = [[] for _ in lengths]
        for p in range(cycle):
            # the segment furthest behind its share of the first p+1 positions takes p
            j = max(range(len(lengths)), key=lambda s: ((p + 1) * lengths[s] - len(owned[s]), -s))
            owned[j].append(p)
        return [
            Segment(j, self.bounds[j], self.bounds[j + 1], cycle, tuple(owned[j]))
            for j in range(len(lengths))
        ]

    def segment(self, j: int) -> Segment:
        return self.segments()[j]


#: The whole run as one segment (a one-process run).
WHOLE = SegmentSequence.even(1).segment(0)
