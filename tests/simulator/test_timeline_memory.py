"""Issue 10 leftover (soak memory): a run keeps only its last timeline point in memory — the
crash-safe run.ndjson has every point and gives them back for the report — so a long run's
memory does not grow by ~1 KB per second; the run folder's timeline is unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scfleet import api
from simulator.report.output import RunStream
from simulator.session import GivenTarget, run_session

pytestmark = pytest.mark.slow

CONFIG = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "4s"
pre_allocated_devices = 4
graceful_stop = "1s"
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 3200
"""


def test_a_run_keeps_one_timeline_point_in_memory_and_reports_them_all(
    tmp_path: Path, scfleet_server: Any
) -> None:
    cfg_file = tmp_path / "up.toml"
    cfg_file.write_text(CONFIG)
    cfg = api.load(cfg_file)
    held: list[int] = []

    def hook(env: Any, point: Any) -> None:
        held.append(len(env.timeline))

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = run_session(cfg, GivenTarget(scfleet_server.url), run_dir, {}, tick_hooks=[hook])
    assert len(held) >= 4
    assert max(held) == 1, held  # it was every point so far: 1, 2, 3, ...
    # the result's timeline: every point, as streamed, in order
    lines = [json.loads(x) for x in (run_dir / "run.ndjson").read_text().splitlines()]
    streamed = [x["point"] for x in lines if x["type"] == "tick"]
    assert result.timeline == streamed and len(streamed) == len(held)
    ts = [p["t"] for p in result.timeline]
    assert ts == sorted(ts) and ts[-1] == pytest.approx(result.duration, abs=1.5)
    # every arrival of the schedule (20/s x 4 s) is in the points: sent, or dropped when a
    # loaded machine kept all 4 devices busy (k6's dropped_iterations; under 3 busy loops 2 of
    # 80 were). A point missing from the report would lose its share of either.
    ups = [p["scenarios"]["up"] for p in result.timeline]
    sent = sum(s["requests"] for s in ups)
    assert sent == result.registry.aggregate("http_reqs", {}, "count") and sent >= 40, ups
    assert sent + sum(s["dropped"] for s in ups) == 80, ups


def test_points_a_failed_write_could_not_stream_still_reach_the_report(tmp_path: Path) -> None:
    class Env:
        def __init__(self) -> None:
            from simulator.metrics import Registry

            self.registry = Registry()
            self.notes: list[str] = []

    stream = RunStream(tmp_path, {"source": "x"})
    env = Env()
    stream.tick(env, {"t": 1.0})  # type: ignore[arg-type]
    stream._fh.close()  # the disk goes away: the next write fails
    stream.tick(env, {"t": 2.0})  # type: ignore[arg-type]
    stream.tick(env, {"t": 3.0})  # type: ignore[arg-type]
    assert stream.failed and env.notes == [stream.failed]
    assert [p["t"] for p in stream.timeline()] == [1.0, 2.0, 3.0]
