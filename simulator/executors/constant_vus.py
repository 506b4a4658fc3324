"""constant-vus: a fixed number of devices loop over iterations for a duration (closed model)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from simulator.executors.closed import FixedVUs


@dataclass(frozen=True)
class ConstantVUs(FixedVUs):
    vus: int
    duration: float
    kind: Literal["constant-vus"] = "constant-vus"
    #: the key that gives its length in a scenario file (None: the stages do)
    duration_key: ClassVar[str | None] = "duration"

    def total_duration(self) -> float:
        return self.duration

    def iteration_bound(self, think_time: float) -> int | None:
        if think_time > 0:
            return int(self.vus * (self.duration / think_time + 1))
        return None

    def iteration_limit(self) -> int | None:
        return None

    def describe(self, duration: str) -> str:
        return f"{self.vus} looping VUs for {duration}"

    def scaled(self, factor: float) -> ConstantVUs:
        return replace(self, duration=self.duration * factor)
