"""bench/bench_hotpath.py drives the real iot_upload path: every request it times is started,
parsed and recorded (a harness that timed a path cut short would report a saving that is not)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("reply", ["sink", "reference"])
def test_every_timed_request_is_recorded(tmp_path: Path, reply: str) -> None:
    spec = importlib.util.spec_from_file_location("bench_hotpath", BENCH / "bench_hotpath.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_hotpath"] = mod
    spec.loader.exec_module(mod)
    toml = tmp_path / "hot.toml"
    toml.write_text(mod.TOML.format(chunk=1000))
    recorded: list[int] = []

    from simulator.metrics import recorders

    real = recorders.RequestRecorder.fold_steps

    def counting(self: recorders.RequestRecorder):  # type: ignore[no-untyped-def]
        recorded.append(len(self.pending) // recorders._ROW)
        return real(self)

    recorders.RequestRecorder.fold_steps = counting  # type: ignore[method-assign]
    try:
        us = asyncio.run(mod._measure(toml, 300, 2, mod.REPLIES[reply]))
    finally:
        recorders.RequestRecorder.fold_steps = real  # type: ignore[method-assign]
    assert sum(recorded) == 600 and us > 0
