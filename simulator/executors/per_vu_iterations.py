"""per-vu-iterations: each device runs a fixed number of iterations, within ``max_duration``;
what a device has not started by then is dropped (k6)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from simulator.executors.closed import FixedVUs


@dataclass(frozen=True)
class PerVUIterations(FixedVUs):
    vus: int
    iterations: int
    max_duration: float
    kind: Literal["per-vu-iterations"] = "per-vu-iterations"
    #: the key that gives its length in a scenario file (None: the stages do)
    duration_key: ClassVar[str | None] = "max_duration"

    def total_duration(self) -> float:
        return self.max_duration

    def iteration_bound(self, think_time: float) -> int:
        return self.vus * self.iterations

    def iteration_limit(self) -> int | None:
        return self.iterations

    def describe(self, duration: str) -> str:
        return f"{self.vus} VUs × {self.iterations} iterations (max {duration})"

    def scaled(self, factor: float) -> PerVUIterations:
        return replace(self, max_duration=self.max_duration * factor)
