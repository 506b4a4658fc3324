"""Issue 10 item 1: a board's result line with a huge value (2**64, 1e30, Infinity) is a protocol
error of that board, never reaches the recorder, and a background task that dies ends the run
with an error instead of silently."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest

from hw_bridge.fleet import BoardDriver
from hw_bridge.link import decode_line
from hw_bridge.testing import FakeBoard, FakeOwner, serve_board
from simulator.config import parse_config
from simulator.http import FakeTransport
from simulator.metrics import IntervalStats, Registry, RequestRecorder, RequestSample
from simulator.report.summary import figures
from simulator.run.device_row import DeviceRow
from simulator.run.runner import Environment, build_bank

ROOT = pathlib.Path(__file__).resolve().parents[2]

BAD_LINES = [
    b'{"t":"result","seq":1,"status":200,"latency_us":900,"bytes":18446744073709551616}',
    b'{"t":"result","seq":2,"status":200,"latency_us":1e30,"bytes":32000}',
    b'{"t":"result","seq":3,"status":200,"latency_us":Infinity,"bytes":32000}',
    b'{"t":"result","seq":4,"status":200,"latency_us":900,"bytes":32000,"lag_us":-Infinity}',
    b'{"t":"result","seq":5,"status":NaN,"latency_us":900,"bytes":32000}',
    b'{"t":"result","seq":1e300,"status":200,"latency_us":900,"bytes":32000}',
    b'{"t":"results","items":[{"seq":6,"status":200,"latency_us":900,"bytes":-1}]}',
]
GOOD = b'{"t":"result","seq":%d,"attempt":1,"status":200,"latency_us":900,"bytes":32000}'


def _bad_messages() -> list[dict[str, Any]]:
    out = []
    for line in BAD_LINES:
        msg = decode_line(line)
        assert isinstance(msg, dict), line
        out.append(msg)
    return out


def test_out_of_range_results_are_protocol_errors_not_records() -> None:
    fleet = FakeOwner()
    d = BoardDriver(fleet, "b", "socket://x", "esp32-x")
    for msg in _bad_messages():
        d.on_message(msg)
    assert fleet.recorded == []
    assert d.protocol_errors == len(BAD_LINES) and d.requests == 0
    d.on_message(decode_line(GOOD % 7))  # type: ignore[arg-type]
    assert [tuple(r)[:5] for r in fleet.recorded] == [(200, False, 900, 0, 32000)]  # not "first"
    assert d.row("s").protocol_errors == len(BAD_LINES)


def test_recorder_never_misaligns_on_a_value_that_does_not_fit() -> None:
    reg = Registry()
    iv = IntervalStats()
    rec = RequestRecorder(reg, (("scenario", "s"),), iv, (("scenario", "s"),))
    rec.record(RequestSample(200, False, 1000, 0, 0, 1000, 0, 1000, 10, 0))
    rec.record(RequestSample(200, False, 1000, 0, 0, 1000, 0, 1000, 2**64, 0))  # overflows mid-row
    rec.record(RequestSample(200, False, 2000, 0, 0, 2000, 0, 2000, float("inf"), 0))  # type: ignore[arg-type]
    rec.record(RequestSample(500, True, 3000, 0, 0, 3000, 0, 3000, 30, 0))
    reg.flush()
    assert rec.rejected == 2
    assert iv.requests == 2 and iv.sent == 40 and iv.failed == 1
    assert reg.merged("http_reqs").value == 2  # type: ignore[union-attr]


def _cfg(seconds: float = 3.0) -> Any:
    return parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 20,
                    "duration": f"{seconds}s",
                    "pre_allocated_devices": 2,
                    "device": {"kind": "iot_upload", "chunk_bytes": 64},
                }
            }
        }
    )


def test_a_dead_tick_ends_the_run_with_an_error_and_keeps_results() -> None:
    cfg = _cfg(30.0)
    env = Environment(cfg, FakeTransport(keep=False), bank=build_bank(cfg), tick=0.2)
    ticks: list[float] = []

    def hook(name: str, t: float, span: float, iv: IntervalStats) -> None:
        ticks.append(t)
        if len(ticks) == 3:
            raise ValueError("cannot reshape array of size 15 into shape (10)")

    env.interval_hooks.append(hook)
    t0 = time.monotonic()
    result = asyncio.run(env.run())
    assert time.monotonic() - t0 < 10, "the run went on without its tick"
    assert result.error is not None and "the tick failed: ValueError" in result.error
    assert "\n" not in result.error
    assert result.interrupted
    assert any("run ended early" in n for n in result.notes)
    assert result.registry.merged("http_reqs").value > 0  # type: ignore[union-attr]


def test_a_companion_that_dies_ends_the_run_with_an_error() -> None:
    class Dying:
        async def prepare(self, env: Environment) -> None:
            pass

        async def run(self, env: Environment, start: float) -> None:
            await asyncio.sleep(0.3)
            raise OverflowError("int too big to convert")

        async def close(self) -> None:
            pass

        def device_rows(self) -> list[DeviceRow]:
            return []

    cfg = _cfg(30.0)
    env = Environment(cfg, FakeTransport(keep=False), bank=build_bank(cfg), tick=0.2)
    env.companions.append(Dying())
    t0 = time.monotonic()
    result = asyncio.run(env.run())
    assert time.monotonic() - t0 < 10
    assert result.error and "OverflowError: int too big to convert" in result.error


@pytest.mark.slow
def test_out_of_range_board_results_through_scfleet_run(tmp_path: pathlib.Path) -> None:
    """A real `scfleet run` with a socket:// board that sends 2**64, 1e30 and Infinity: the run
    completes, the tick keeps ticking, the good results count and the bad ones are reported."""
    # 5 results/s for the 4 s schedule: 20 good ones, the bad lines before the 11th
    board = FakeBoard("edge", inject={10: _bad_messages()})
    with serve_board(board) as url:
        res, out = _run_with_board(tmp_path, url)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "Traceback" not in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    physical = int(figures(summary, "http_reqs{kind:physical}")["count"])
    assert physical == board.seq == 20
    notes = summary["scfleet"]["notes"]
    assert any("protocol errors (socket://" in n for n in notes), notes
    assert any(f": {len(BAD_LINES)})" in n for n in notes), notes
    timeline = json.loads((out / "timeline.json").read_text())
    assert len(timeline) >= 4  # the tick lived to the end of the 4 s schedule


def _run_with_board(
    tmp_path: pathlib.Path, url: str
) -> tuple[subprocess.CompletedProcess[str], pathlib.Path]:
    conf = tmp_path / "board.toml"
    conf.write_text(
        f"""
[scenarios.iot_upload]
executor = "constant-arrival-rate"
rate = 5
duration = "4s"
pre_allocated_devices = 2
graceful_stop = "1s"
[scenarios.iot_upload.device]
kind = "iot_upload"
chunk_bytes = 3200
[boards]
ports = ["{url}"]
rate = 5
"""
    )
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "scfleet", "run", str(conf), "--out", str(out)] + ["--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    return res, out


def test_a_sampler_whose_background_part_died_ends_the_run() -> None:
    """The generator sampler's loop-lag probe task dies: the run ends with one line, not
    silently without that data."""
    from simulator.run.monitoring import GeneratorSampler

    cfg = _cfg(15.0)
    env = Environment(cfg, FakeTransport(keep=False), bank=build_bank(cfg), tick=0.2)
    gen = GeneratorSampler(probe_interval=0.01)

    async def broken_probe() -> None:
        await asyncio.sleep(0.3)
        raise MemoryError("probe")

    class Probe:
        async def prepare(self, env: Environment) -> None:
            gen._task = asyncio.get_running_loop().create_task(broken_probe())

        async def run(self, env: Environment, start: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(env.stop_event.wait(), 20)

        async def close(self) -> None:
            pass

        def device_rows(self) -> list[dict[str, Any]]:
            return []

    env.add_sampler("gen", gen)
    env.companions.append(Probe())
    t0 = time.monotonic()
    result = asyncio.run(env.run())
    assert time.monotonic() - t0 < 10
    assert result.error and "SamplerDied: the loop-lag probe died (MemoryError" in result.error
