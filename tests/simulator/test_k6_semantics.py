"""k6 behaviours users rely on (checked against k6 1.1.0's executors), pinned one by one.

Schedules run on the virtual-time loop; the think-time tests run a whole Environment on the
real clock (iteration_duration is measured with perf_counter), about 1.5 s each, except the one
that pins which sleep a graceful stop cuts (virtual time: a stalled loop must not decide it).
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest
import vtime

from simulator.config import PerVUIterations, RampingArrivalRate, RampingVUs, Stage, parse_config
from simulator.executors import arrival_offsets, expected_iterations, run_vus
from simulator.http import FakeReply, FakeTransport, Request
from simulator.run.runner import Environment


def _rar(start_rate: float, *stages: tuple[float, float]) -> RampingArrivalRate:
    return RampingArrivalRate(
        start_rate=start_rate,
        time_unit=1,
        stages=tuple(Stage(d, t) for d, t in stages),
        pre_allocated_devices=1,
        max_devices=1,
    )


# --------------------------------------------------------------------------- ramping-arrival-rate


def test_ramp_from_zero_starts_nothing_at_zero() -> None:
    """0 → 10/s over 10 s: the integral is t²/2, so iteration i starts at √(2i), not at 0."""
    offs = list(arrival_offsets(_rar(0, (10, 10))))
    assert len(offs) == 50 == expected_iterations(_rar(0, (10, 10)))
    assert offs[0] == pytest.approx(math.sqrt(2))
    assert offs[:4] == pytest.approx([math.sqrt(2 * i) for i in range(1, 5)])
    assert offs[-1] == pytest.approx(10)


def test_constant_stage_starts_one_period_in() -> None:
    """k6's cal(): at a steady 10/s the first of a ramping-arrival-rate is due at 0.1 s."""
    offs = list(arrival_offsets(_rar(10, (1, 10))))
    assert offs == pytest.approx([0.1 * i for i in range(1, 11)])


@pytest.mark.parametrize(
    ("start", "stages", "total"),
    [
        (0, [(3, 5)], 7),  # area 7.5
        (0, [(1, 1)], 0),  # area 0.5: nothing
        (2, [(1, 3), (1, 0)], 4),  # 2.5 + 1.5 = 4
        (0, [(2, 3), (0, 7), (1, 7)], 10),  # 3 + 7
        (1, [(3, 2)], 4),  # 4.5
    ],
)
def test_totals_round_down(start: float, stages: list[tuple[float, float]], total: int) -> None:
    ex = _rar(start, *stages)
    offs = list(arrival_offsets(ex))
    assert len(offs) == total == expected_iterations(ex)
    assert offs == sorted(offs) and all(o > 0 for o in offs)


# --------------------------------------------------------------------------- per-vu-iterations


class _Events:
    def __init__(self) -> None:
        self.dropped_n = 0
        self.interrupted_n = 0

    unreached_n = 0  # arrivals of the plan neither started nor dropped (stopped)

    def dropped(self, count: int = 1, *, pool_full: bool = False) -> None:
        self.dropped_n += count

    def unreached(self, count: int) -> None:
        self.unreached_n += count

    def active(self, count: int) -> None:
        pass

    def interrupted(self, count: int) -> None:
        self.interrupted_n += count

    def capacity(self, count: int) -> None:
        pass


class _Dev:
    def __init__(self, index: int) -> None:
        self.index = index


@pytest.mark.parametrize(("graceful", "interrupted"), [(1.0, 0), (0.05, 2)])
def test_per_vu_iterations_not_started_by_max_duration_are_dropped(
    graceful: float, interrupted: int
) -> None:
    """2 VUs × 10 iterations of 0.3 s in 1 s: each starts 4 (0, .3, .6, .9), drops 6."""
    ex = PerVUIterations(vus=2, iterations=10, max_duration=1.0)
    ev = _Events()
    done = 0

    async def main() -> None:
        async def iterate(dev: _Dev, scheduled: float) -> None:
            nonlocal done
            await asyncio.sleep(0.3)
            done += 1

        await run_vus(
            ex,
            start=asyncio.get_running_loop().time(),
            make_device=_Dev,
            iterate=iterate,
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=graceful,
        )

    vtime.run_virtual(main())
    assert ev.dropped_n == 12
    assert ev.interrupted_n == interrupted
    assert done == 8 - interrupted


@pytest.mark.parametrize(("length", "graceful"), [(0.04, 0.01), (0.1, 0.05)])
def test_an_iteration_cut_by_ramp_down_as_the_run_ends_counts_once(
    length: float, graceful: float
) -> None:
    """A ramp to 0 VUs at the very end with no ramp-down grace: the ramp-down cancels the
    iteration and the end's drain meets it still pending. One iteration is one interrupt."""
    ex = RampingVUs(start_vus=1, stages=(Stage(length, 0),), graceful_ramp_down=0.0)
    ev = _Events()
    cut = 0

    async def main() -> None:
        async def iterate(dev: _Dev, scheduled: float) -> None:
            nonlocal cut
            try:
                await asyncio.sleep(5.0)  # a think time that outlasts the run
            except asyncio.CancelledError:
                cut += 1
                raise

        await run_vus(
            ex,
            start=asyncio.get_running_loop().time(),
            make_device=_Dev,
            iterate=iterate,
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=graceful,
        )

    vtime.run_virtual(main())
    assert cut == 1
    assert ev.interrupted_n == cut


def test_per_vu_iterations_that_finish_drop_nothing() -> None:
    ex = PerVUIterations(vus=3, iterations=2, max_duration=10.0)
    ev = _Events()

    async def main() -> None:
        async def iterate(dev: _Dev, scheduled: float) -> None:
            await asyncio.sleep(0.1)

        await run_vus(
            ex,
            start=asyncio.get_running_loop().time(),
            make_device=_Dev,
            iterate=iterate,
            events=ev,
            stop=asyncio.Event(),
            graceful_stop=1,
        )

    vtime.run_virtual(main())
    assert ev.dropped_n == 0


# --------------------------------------------------------------------------- think time


def _think_run(
    graceful_stop: str,
    executor: dict[str, object],
    loop: asyncio.AbstractEventLoop | None = None,
) -> Environment:
    """Run on the real clock, or on ``loop`` (the virtual-time one), which it closes."""
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    **executor,
                    "think_time": "0.5s",
                    "graceful_stop": graceful_stop,
                    "device": {"kind": "iot_upload", "chunk_bytes": 64},
                }
            }
        }
    )

    def handler(req: Request) -> FakeReply:
        return FakeReply(200, b"{}")

    from simulator.run.runner import build_bank

    env = Environment(cfg, FakeTransport(handler, keep=False), bank=build_bank(cfg))
    if loop is None:
        env.result = asyncio.run(env.run())  # type: ignore[attr-defined]
        return env
    try:
        env.result = loop.run_until_complete(env.run())  # type: ignore[attr-defined]
    finally:
        loop.close()
    return env


@pytest.mark.slow
def test_think_time_is_part_of_the_iteration_and_the_run() -> None:
    """k6: sleep() belongs to iteration_duration, and the run lasts until the last one ends.

    2 VUs for 1.25 s, a near-instant request then 0.5 s of think time: iterations start at
    0, 0.5 and 1.0 s; the third ends at 1.5 s, inside the graceful stop.
    """
    env = _think_run("30s", {"executor": "constant-vus", "vus": 2, "duration": "1.25s"})
    reg = env.registry
    assert reg.aggregate("iterations", {}, "count") == 6
    assert reg.aggregate("iteration_duration", {}, "min") >= 500  # type: ignore[operator]
    assert reg.aggregate("iteration_duration", {}, "med") < 700  # type: ignore[operator]
    assert reg.aggregate("interrupted_iterations", {}, "count") == 0
    assert env.result.duration >= 1.5  # type: ignore[attr-defined]
    assert reg.aggregate("http_reqs", {}, "count") == 6


def test_think_time_cut_by_graceful_stop_is_interrupted() -> None:
    """The same run cut by a 0.1 s graceful stop, on virtual time: what is under test is the
    schedule (which sleep the stop cuts), so a loaded machine that stalls the loop past both
    the stop and the sleep's end must not decide it (on the real clock it ran 6 for 4)."""
    loop = vtime.VirtualTimeLoop()
    begun = loop.time()
    env = _think_run("0.1s", {"executor": "constant-vus", "vus": 2, "duration": "1.25s"}, loop=loop)
    reg = env.registry
    assert reg.aggregate("http_reqs", {}, "count") == 6  # the third requests were sent...
    assert reg.aggregate("iterations", {}, "count") == 4  # ...but their sleep was cut at 1.35 s
    assert reg.aggregate("interrupted_iterations", {}, "count") == 2
    assert loop.time() - begun == pytest.approx(1.35)  # the run ends at the stop, not at 1.5 s


@pytest.mark.slow
def test_think_time_in_arrival_rate_keeps_the_device_busy() -> None:
    """An arrival-rate iteration with a sleep holds its device: 4/s for 1 s on 1 device with
    0.5 s of think time runs 2 iterations and drops 2 (k6: no free VU)."""
    env = _think_run(
        "30s",
        {
            "executor": "constant-arrival-rate",
            "rate": 4,
            "duration": "1s",
            "pre_allocated_devices": 1,
            "max_devices": 1,
        },
    )
    reg = env.registry
    assert reg.aggregate("iterations", {}, "count") == 2
    assert reg.aggregate("dropped_iterations", {}, "count") == 2
    assert reg.aggregate("iteration_duration", {}, "min") >= 500  # type: ignore[operator]


# --------------------------------------------------------------------------- devices, vus, vus_max

_K6_RAMP = {
    "executor": "ramping-vus",
    "start_vus": 4,
    "stages": [
        {"duration": "2s", "target": 6},
        {"duration": "5s", "target": 1},
        {"duration": "4s", "target": 5},
        {"duration": "4s", "target": 1},
        {"duration": "3s", "target": 4},
        {"duration": "2s", "target": 4},
        {"duration": "0s", "target": 1},
        {"duration": "3s", "target": 1},
    ],
}


@pytest.mark.parametrize(("graceful_stop", "end"), [("30s", 53.0), ("80s", 103.0)])
def test_ramping_vus_device_steps_match_k6s_execution_plan(graceful_stop: str, end: float) -> None:
    """k6's own example (TestRampingVUsConfigExecutionPlanExample): VUs ramping down keep
    their place for graceful_ramp_down (30 s) unless the ramp comes back up first."""
    from simulator.executors import device_steps

    cfg = parse_config({"scenarios": {"test": {**_K6_RAMP, "graceful_stop": graceful_stop}}})
    assert device_steps(cfg.scenarios[0]) == [
        (0.0, 4, 0),
        (1.0, 5, 0),
        (2.0, 6, 0),
        (33.0, 5, 0),
        (42.0, 4, 0),
        (50.0, 1, 0),
        (end, 0, 0),
    ]


def _two(b_start: str, b_kind: dict[str, object] | None = None) -> list[object]:
    cfg = parse_config(
        {
            "scenarios": {
                "a": {
                    "executor": "constant-vus",
                    "vus": 10,
                    "duration": "3s",
                    "graceful_stop": "1s",
                },
                "b": {
                    **(
                        b_kind
                        or {
                            "executor": "constant-vus",
                            "vus": 20,
                            "duration": "3s",
                            "start_time": b_start,
                            "graceful_stop": "1s",
                        }
                    ),
                    # b's device IDs after a's: each numbers its uploads from sequence 0
                    "device": {"id_start": 1001},
                },
            }
        }
    )
    return list(cfg.scenarios)


def test_scenarios_that_do_not_overlap_reuse_devices() -> None:
    from simulator.executors import DevicePlan, device_plan

    assert device_plan(_two("4s")) == DevicePlan(20, 20)  # a is over (3 s + 1 s) at 4 s
    assert device_plan(_two("3.5s")) == DevicePlan(30, 30)  # a may still finish iterations
    arrival = {
        "executor": "constant-arrival-rate",
        "rate": 5,
        "duration": "3s",
        "pre_allocated_devices": 5,
        "max_devices": 50,
    }
    assert device_plan(_two("0s", arrival)) == DevicePlan(15, 60)
    assert device_plan(_two("0s", {**arrival, "start_time": "4s"})) == DevicePlan(10, 50)


def _virtual_env(scenarios: dict[str, object], seconds: float = 0.1) -> Environment:
    cfg = parse_config({"scenarios": scenarios})

    async def handler(req: Request) -> FakeReply:
        await asyncio.sleep(seconds)
        return FakeReply(200, b"{}")

    from simulator.run.runner import build_bank

    env = Environment(cfg, FakeTransport(handler, keep=False), bank=build_bank(cfg))
    vtime.run_virtual(env.run())
    return env


def test_vus_max_is_the_peak_need_not_the_sum() -> None:
    """a: 10 devices for 3 s; b: 20 devices from 4 s. k6's vus_max is 20 from the start."""
    dev = {"kind": "iot_upload", "chunk_bytes": 64}
    env = _virtual_env(
        {
            "a": {
                "executor": "constant-vus",
                "vus": 10,
                "duration": "3s",
                "graceful_stop": "1s",
                "device": dev,
            },
            "b": {
                "executor": "constant-vus",
                "vus": 20,
                "duration": "3s",
                "start_time": "4s",
                "graceful_stop": "1s",
                "device": {**dev, "id_start": 11},  # a's are 1..10
            },
        }
    )
    vus_max = env.registry.get("vus_max")
    assert (vus_max.min, vus_max.max, vus_max.value) == (20, 20, 20)
    vus = env.registry.get("vus")
    assert vus.max == 20  # never 30: the scenarios do not run at once


def test_vus_is_sampled_each_second_not_the_peak_between() -> None:
    """k6 samples the active VUs once a second. An arrival-rate device busy 0.2 s of every
    second, between the samples, is never seen active."""
    env = _virtual_env(
        {
            "up": {
                "executor": "constant-arrival-rate",
                "rate": 1,
                "duration": "4s",
                "start_time": "0.3s",
                "pre_allocated_devices": 2,
                "max_devices": 2,
                "device": {"kind": "iot_upload", "chunk_bytes": 64},
            }
        },
        seconds=0.2,
    )
    assert env.registry.aggregate("iterations", {}, "count") == 4
    vus = env.registry.get("vus")
    assert vus.seen and vus.max == 0
    assert env.registry.get("vus_max").value == 2
    # the timeline keeps the peak per tick ("active") beside k6's sample ("vus")...
    ticks = [p["scenarios"]["up"] for p in env.timeline]
    assert max(s["active"] for s in ticks) == 1
    assert [s["vus"] for s in ticks[:-1]] == [0] * (len(ticks) - 1)
    assert "vus" not in ticks[-1]  # the after-run tick is no sample
    # ...and the k6-format stream carries the samples
    from simulator.report.exports import ndjson_lines

    points = [json.loads(line) for line in ndjson_lines(env.timeline, 0.0)]
    vus_points = [
        p["data"]["value"] for p in points if p["metric"] == "vus" and p["type"] == "Point"
    ]
    assert vus_points and set(vus_points) == {0}


@pytest.mark.parametrize("tick", ["under_a_second", "never_turns"])
def test_vus_and_vus_max_are_sampled_at_the_end_only_when_a_tick_should_have(
    tick: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of 2.1 s whose ticks never got a turn (a busy loop, simulated) took no vus
    sample: vus and vus_max were missing from its registry, summary and series, where k6's
    own ticker would have sampled them. The end samples them then, once. A run under a
    second has neither, as in k6 1.1 (3 VUs x 1 iteration: its --summary-export has no vus);
    a run whose tick sampled them is not sampled after it (above)."""
    seconds = 0.1
    if tick == "never_turns":
        seconds = 0.7  # 3 iterations each: 2.1 s, past two ticks that never ran

        async def late(self: Environment, start: float) -> None:
            await asyncio.sleep(3600)

        monkeypatch.setattr(Environment, "_ticker", late)
    env = _virtual_env(
        {
            "up": {
                "executor": "per-vu-iterations",
                "vus": 3,
                "iterations": 1 if tick == "under_a_second" else 3,
                "max_duration": "30s",
                "device": {"kind": "iot_upload", "chunk_bytes": 64},
            }
        },
        seconds=seconds,
    )
    assert env.points == 1  # the end's point only
    vus, vus_max = env.registry.get("vus"), env.registry.get("vus_max")
    if tick == "under_a_second":
        assert not vus.seen and not vus_max.seen
        assert "vus" not in env.timeline[-1]["scenarios"]["up"]
        return
    assert vus.seen and vus_max.seen
    assert (vus.value, vus_max.value) == (0, 3)  # none active at the end; 3 planned
    assert env.timeline[-1]["scenarios"]["up"]["vus"] == 0


def test_the_request_timeout_defaults_to_k6s_60_s() -> None:
    """k6's ``timeout`` request parameter defaults to 60 s (k6 docs, http Params): an
    answer after 45 s is a success there. scfleet defaulted to 30 s, so the same slow answer
    (the AI route past its knee) counted failed, and ``http_req_failed`` broke where k6's held."""
    from pathlib import Path

    from scfleet import api
    from simulator.config.model import TargetConfig

    cfg = api.load(Path(__file__).resolve().parents[2] / "configs" / "smoke.toml")
    assert cfg.target.timeout == 60.0
    assert TargetConfig().timeout == 60.0
