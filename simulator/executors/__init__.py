"""Executors: *when* iterations start and how many devices are active — scheduling only.

One module per executor kind; each spec class answers for itself (duration, device bound,
mean rate, schedule, stage windows, description, time scaling, which driver runs it), as k6's
``lib/executors.go`` does. :mod:`~simulator.executors.arrival` (open model) and
:mod:`~simulator.executors.vus` (closed model) are the async drivers; nothing here knows about
HTTP or metrics, so tests drive it with a virtual-time loop and no network.
"""

from __future__ import annotations

from simulator.executors.arrival import MAX_PER_CALLBACK, run_arrival_rate
from simulator.executors.base import (
    Behaviour,
    Device,
    Drive,
    ExecutorEvents,
    ExecutorSpec,
    Iterate,
    ScheduleSpec,
    Stage,
    StageWindow,
    Starter,
    per_second,
)
from simulator.executors.constant_arrival_rate import ConstantArrivalRate
from simulator.executors.constant_vus import ConstantVUs
from simulator.executors.per_vu_iterations import PerVUIterations
from simulator.executors.plan import (
    DevicePlan,
    arrival_offsets,
    device_plan,
    device_steps,
    expected_iterations,
    stage_windows,
    vu_changes,
)
from simulator.executors.ramping_arrival_rate import RampingArrivalRate
from simulator.executors.ramping_vus import RampingVUs
from simulator.executors.runtime import (
    DevicePool,
    TaskStarter,
    perf_offset,
    schedule_clock,
    wait_set,
)
from simulator.executors.segment import WHOLE, Segment, SegmentSequence
from simulator.executors.segmented import SegmentedArrival, SegmentedVUs
from simulator.executors.vus import run_vus

ExecutorConfig = (
    ConstantArrivalRate | RampingArrivalRate | ConstantVUs | RampingVUs | PerVUIterations
)
#: kind name -> spec class (the config's ``executor = "..."`` values, in k6's order)
EXECUTOR_KINDS: dict[str, type[ExecutorConfig]] = {
    c.kind: c
    for c in (ConstantArrivalRate, RampingArrivalRate, ConstantVUs, RampingVUs, PerVUIterations)
}


def executor_duration(ex: ScheduleSpec) -> float:
    """The scheduled duration of ``ex`` (graceful stop not included)."""
    return ex.total_duration()


__all__ = [
    "EXECUTOR_KINDS",
    "MAX_PER_CALLBACK",
    "Behaviour",
    "ConstantArrivalRate",
    "ConstantVUs",
    "Device",
    "DevicePlan",
    "DevicePool",
    "Drive",
    "ExecutorConfig",
    "ExecutorEvents",
    "ExecutorSpec",
    "ScheduleSpec",
    "Iterate",
    "PerVUIterations",
    "RampingArrivalRate",
    "RampingVUs",
    "Segment",
    "SegmentSequence",
    "SegmentedArrival",
    "SegmentedVUs",
    "Stage",
    "StageWindow",
    "Starter",
    "TaskStarter",
    "WHOLE",
    "arrival_offsets",
    "device_plan",
    "device_steps",
    "executor_duration",
    "expected_iterations",
    "per_second",
    "perf_offset",
    "wait_set",
    "run_arrival_rate",
    "run_vus",
    "schedule_clock",
    "stage_windows",
    "vu_changes",
]
