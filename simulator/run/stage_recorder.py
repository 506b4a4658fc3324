"""Per-stage latency during the run: each tick's histogram merged into its stage's, so the
stage table (simulator.report.stages) has an exact per-stage p95. Ticks in the graceful stop
go to the last stage: the requests that finish there started in it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from simulator.executors import StageWindow, stage_windows
from simulator.metrics import Histogram, IntervalStats

if TYPE_CHECKING:
    from simulator.config import RunConfig


def locate(windows: Sequence[StageWindow], t: float, span: float) -> int | None:
    """Index of the stage holding a tick's midpoint (ticks end at ``t`` and last ``span``)."""
    mid = t - span / 2
    for w in windows:
        if w.start <= mid < w.end:
            return w.index
    return None


def last_stage(windows: Sequence[StageWindow]) -> StageWindow | None:
    """The stage that ends last: requests still in flight when the schedule ends started in
    it, and their latencies (which finish in the graceful stop) are its."""
    held = [w for w in windows if w.end > w.start]
    return max(held, key=lambda w: w.end) if held else None


def after_schedule(last: StageWindow | None, t: float, span: float) -> bool:
    """A tick past the scenario's last stage (:func:`last_stage`): its graceful stop."""
    return last is not None and t - span / 2 >= last.end


class StageRecorder:
    """Merges each tick's latency histogram into its stage's (an exact per-stage p95)."""

    def __init__(self, windows: Mapping[str, Sequence[StageWindow]]) -> None:
        self.windows = {k: list(v) for k, v in windows.items()}
        self.hists: dict[tuple[str, int], Histogram] = {}

    @classmethod
    def for_config(cls, cfg: RunConfig) -> StageRecorder:
        return cls({sc.name: stage_windows(sc) for sc in cfg.scenarios})

    def record(self, scenario: str, t: float, span: float, iv: IntervalStats) -> None:
        """``Environment.interval_hooks`` callback; never raises into the ticker."""
        windows = self.windows.get(scenario, ())
        idx = locate(windows, t, span)
        if idx is None:
            last = last_stage(windows)
            if last is not None and after_schedule(last, t, span):  # ended in the graceful stop
                idx = last.index
        if idx is None or iv.hist.count == 0:
            return
        self.hists.setdefault((scenario, idx), Histogram()).merge(iv.hist)

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": [asdict(w) for ws in self.windows.values() for w in ws],
            "histograms": {f"{s}/{i}": h.to_dict() for (s, i), h in sorted(self.hists.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageRecorder:
        windows: dict[str, list[StageWindow]] = {}
        for w in data.get("windows", []):
            windows.setdefault(w["scenario"], []).append(StageWindow(**w))
        rec = cls(windows)
        for key, h in data.get("histograms", {}).items():
            s, _, i = key.rpartition("/")
            rec.hists[(s, int(i))] = Histogram.from_dict(h)
        return rec
