"""A run a threshold aborted (``abort_on_fail``) exits 99 and shows that threshold failed,
whatever the whole run's figure reads when judged again at the end: k6 exits 99 after such an
abort (``ThresholdsHaveFailed``, the abort's own error).

Found with a counter rate: ``http_reqs = [{threshold = "rate<20.5", abort_on_fail = true}]``
at 20 uploads/s for 5 s aborted the run at 1 s (21 requests, 21/s), and the end's judgement,
21 over the run's 1.03 s, read 20.4 and passed: ✓, ``thresholdsOk`` true and exit 0 for a run
stopped at a fifth of its schedule (2 of 3 runs; the third was not aborted). Below, the time
the devices' ``on_stop`` takes (part of the run, as k6's teardown) makes that certain: the
rate that aborted the run at ~20/s reads ~10/s at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from answering import answering

from scfleet import api
from simulator.config import parse_config
from simulator.metrics import Registry
from simulator.run.runner import threshold_results

DEVICE = """
import asyncio
from simulator.userdevice import Device


class D(Device):
    async def iteration(self) -> None:
        await self.client.post("/up", data=b"x" * 64)

    async def on_stop(self) -> None:
        await asyncio.sleep(1.5)
"""

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "5s"
pre_allocated_devices = 5
[scenarios.up.device]
kind = "python:dev.py:D"
[thresholds]
http_reqs = [{ threshold = "rate<15", abort_on_fail = true }]
"""


def test_the_threshold_that_aborted_the_run_has_failed() -> None:
    cfg = parse_config(
        {
            "scenarios": {"up": {"executor": "constant-vus", "vus": 1, "duration": "5s"}},
            "thresholds": {
                "http_reqs": [{"threshold": "rate<15", "abort_on_fail": True}, "count<100"]
            },
        }
    )
    reg = Registry()
    reg.get("http_reqs", {"scenario": "up"}).add(20)
    # judged over 2 s: 10/s, under 15 — but it aborted the run at 1 s (20/s)
    aborted, other = threshold_results(cfg, reg, 2.0, "http_reqs: rate<15")
    assert (aborted.ok, aborted.observed) == (False, 10.0) and "aborted" in aborted.note
    assert other.ok
    assert all(r.ok for r in threshold_results(cfg, reg, 2.0))  # no abort: judged as measured


@pytest.mark.slow
def test_an_aborted_run_exits_99(tmp_path: Path) -> None:
    (tmp_path / "dev.py").write_text(DEVICE)
    (tmp_path / "s.toml").write_text(SCENARIO)
    with answering(200, 0.0) as url:
        out = api.run(api.load(tmp_path / "s.toml"), target=url, out=tmp_path / "r", workers=1)
    assert out.result.aborted == "http_reqs: rate<15", out.result.notes
    assert out.exit_code == 99
    doc = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert doc["metrics"]["http_reqs"]["thresholds"] == {"rate<15": True}
    assert doc["metrics"]["http_reqs"]["rate"] < 15  # the end's figure alone would pass
    assert doc["scfleet"]["state"]["thresholdsOk"] is False
