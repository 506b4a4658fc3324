"""Timing that tells the truth: nothing starts before it is due, so the corrected duration
(from the scheduled start) is never shorter than the raw one, on uvloop as ``scfleet run`` uses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simulator.config import parse_config
from simulator.http import make_transport
from simulator.metrics import IterationRecorder, RequestRecorder, RequestSample, start_accuracy
from simulator.report.summary import render_text
from simulator.run.runner import Environment, RunResult, build_bank


class _Ok(asyncio.Protocol):
    """Answers every request on the connection with a tiny 200 (keep-alive)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            i = head.find(b"content-length:")
            size = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < end + 4 + size:
                return
            del self.buf[: end + 4 + size]
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def _run(rate: int, seconds: int) -> RunResult:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Ok, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": rate,
                    "duration": f"{seconds}s",
                    "pre_allocated_devices": 100,
                    "max_devices": 400,
                    "graceful_stop": "10s",
                    "device": {"chunk_bytes": 3200},
                }
            }
        }
    )
    transport = make_transport(f"http://127.0.0.1:{port}", timeout=10.0)
    try:
        return await Environment(cfg, transport, bank=build_bank(cfg)).run()
    finally:
        await transport.close()
        server.close()


@pytest.mark.slow
def test_corrected_is_never_shorter_than_raw_and_nothing_starts_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before the fix the schedule started everything due within the next millisecond at once
    (by uvloop's millisecond clock): requests left up to ~1 ms early, and their corrected
    duration was shorter than the raw one."""
    import uvloop

    pairs: list[tuple[int, int]] = []  # (duration µs, corrected µs) per request
    lags: list[int] = []  # actual − scheduled start, µs, before any clipping
    record, record_it = RequestRecorder.record, IterationRecorder.record

    def spy(self: RequestRecorder, sample: RequestSample) -> None:
        pairs.append((sample.duration_us, sample.corrected_us))
        record(self, sample)

    def spy_it(self: IterationRecorder, duration_us: int, lag_us: int) -> None:
        lags.append(lag_us)
        record_it(self, duration_us, lag_us)

    monkeypatch.setattr(RequestRecorder, "record", spy)
    monkeypatch.setattr(IterationRecorder, "record", spy_it)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(_run(1000, 2))
    assert len(pairs) == 2000 and len(lags) == 2000
    shorter = [(d, c) for d, c in pairs if c < d]
    assert not shorter, f"{len(shorter)} requests with corrected < raw, e.g. {shorter[:3]}"
    assert min(lags) >= 0, f"{sum(x < 0 for x in lags)} iterations started early"
    acc = start_accuracy(result.registry)
    assert acc is not None and acc["count"] == 2000
    assert 0 <= acc["p1_ms"] <= acc["p50_ms"] <= acc["p99_ms"] <= acc["max_ms"]
    assert "start accuracy (actual − scheduled): p1 " in render_text(result)
