"""Per-stage latency during the run: each tick's histogram merged into its stage's, so the
stage table (simulator.report.stages) has an exact per-stage p95."""

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
        idx = locate(self.windows.get(scenario, ()), t, span)
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
