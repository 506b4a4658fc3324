"""ramping-vus: the number of looping devices ramps through stages one device at a time;
devices removed by a ramp-down finish their iteration within ``graceful_ramp_down``."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar, Literal

from simulator.executors.base import ClosedModel, D, Drive, Stage, StageWindow, ramp_windows

if TYPE_CHECKING:
    from simulator.executors.segment import Segment
    from simulator.executors.segmented import SegmentedVUs


def _ramp_down_reserved(
    raw: list[tuple[float, int]], grace: float, end: float
) -> list[tuple[float, int]]:
    """k6's graceful ramp-down reservation: after a step down, keep the higher count for
    ``grace`` seconds (devices finishing their iteration), unless it rises back first.
    O(n log n): a range-maximum table answers "does it rise back to ``last`` in the window"."""
    times = [t for t, _ in raw]
    table = [[n for _, n in raw]]  # table[k][i] = max of raw[i : i + 2**k]
    while 2 ** len(table) <= len(raw):
        prev, half = table[-1], 2 ** (len(table) - 1)
        table.append([max(prev[i], prev[i + half]) for i in range(len(prev) - half)])

    def range_max(lo: int, hi: int) -> int:  # max over raw[lo:hi], hi > lo
        k = (hi - lo).bit_length() - 1
        return max(table[k][lo], table[k][hi - (1 << k)])

    out: list[tuple[float, int]] = []
    last = 0
    i = 0
    while i < len(raw):
        t, n = raw[i]
        if i == 0 or n > last:
            out.append((t, n))
            last = n
        elif n < last:
            until = t + grace
            hi = bisect.bisect_right(times, until, i + 1)  # steps inside the grace window
            if hi > i + 1 and range_max(i + 1, hi) >= last:
                lo, top = i + 1, hi  # the first step back up to `last`
                while top - lo > 1:
                    mid = (lo + top) // 2
                    if range_max(i + 1, mid) >= last:
                        top = mid
                    else:
                        lo = mid
                i = top - 1
                continue
            if until >= end:
                break
            out.append((until, n))
            last = n
        i += 1
    return out


@dataclass(frozen=True)
class RampingVUs(ClosedModel):
    start_vus: int
    stages: tuple[Stage, ...]
    graceful_ramp_down: float
    kind: Literal["ramping-vus"] = "ramping-vus"
    #: it ramps through ``stages``
    ramps: ClassVar[bool] = True
    #: the key that gives its length in a scenario file (None: the stages do)
    duration_key: ClassVar[str | None] = None

    def total_duration(self) -> float:
        return sum(s.duration for s in self.stages)

    def device_bound(self) -> int:
        return max([self.start_vus, *(int(s.target) for s in self.stages)])

    def iteration_bound(self, think_time: float) -> None:
        return None

    def iteration_limit(self) -> int | None:
        return None

    def ramp_down_grace(self, graceful_stop: float) -> float:
        return self.graceful_ramp_down

    def vu_changes(self) -> list[tuple[float, int]]:
        """(offset, active VUs) change points, starting with the count at 0."""
        out = [(0.0, self.start_vus)]
        cur = self.start_vus
        t = 0.0
        for s in self.stages:
            target = int(s.target)
            if target != cur:
                if s.duration <= 0:
                    out.append((t, target))
                else:
                    step = 1 if target > cur else -1
                    span = abs(target - cur)
                    for k in range(1, span + 1):
                        out.append((t + s.duration * k / span, cur + step * k))
            cur = target
            t += s.duration
        merged: list[tuple[float, int]] = []
        for off, n in out:
            if merged and abs(merged[-1][0] - off) < 1e-12:
                merged[-1] = (off, n)
            else:
                merged.append((off, n))
        return merged

    def device_steps(self, graceful_stop: float) -> list[tuple[float, int, int]]:
        end = self.total_duration() + graceful_stop
        raw = self.vu_changes()
        if self.graceful_ramp_down > 0:
            raw = _ramp_down_reserved(raw, self.graceful_ramp_down, end)
        return [(t, n, 0) for t, n in raw if t < end]

    def stage_windows(self, scenario: str, start: float) -> list[StageWindow]:
        return ramp_windows(scenario, start, self.start_vus, self.stages, 1.0, "VUs")

    def describe(self, duration: str) -> str:
        peak = max(s.target for s in self.stages)
        return f"up to {peak:g} looping VUs for {duration} over {len(self.stages)} stages"

    def scaled(self, factor: float) -> RampingVUs:
        return replace(
            self, stages=tuple(replace(s, duration=s.duration * factor) for s in self.stages)
        )

    def for_segment(self, segment: Segment) -> SegmentedVUs:
        """This executor's share of a run split into execution segments."""
        from simulator.executors.segmented import SegmentedVUs

        return SegmentedVUs(self, segment)

    async def drive(self, run: Drive[D]) -> None:
        from simulator.executors.vus import drive_vus

        await drive_vus(self, run)
