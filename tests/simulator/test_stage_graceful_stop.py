"""A run whose slow requests all finish after its schedule (in the graceful stop): the stage
they started in judges them, so the verdict agrees with the run's thresholds. Real server on
127.0.0.1: every fourth upload is answered after 1 s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from half_hanging import every_nth_held

from scfleet import api


@pytest.fixture
def slow_server() -> Iterator[str]:
    with every_nth_held(4, 1.0) as url:
        yield url


_TOML = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "1s"
pre_allocated_devices = 10
max_devices = 40
[scenarios.up.device]
chunk_bytes = 200
[thresholds]
http_req_duration = ["p(95)<500"]
[audio]
profiles = 1
seconds = 1
"""


@pytest.mark.slow
def test_slow_requests_finishing_after_the_schedule_fail_their_stage(
    tmp_path: Path, slow_server: str
) -> None:
    """Before: the run failed ``p(95)<500`` (observed ~1002 ms, exit 99) while its only stage
    passed with p95 3.3 ms and 15 of 20 requests, and the verdict read "held — the limit is
    higher"."""
    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text(_TOML)
    outcome = api.run(api.load(cfg_file), target=slow_server, out=tmp_path / "run", workers=1)
    assert outcome.exit_code == 99  # the run's threshold failed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    stages = summary["scfleet"]["stages"]
    (row,) = stages["rows"]
    # Every request the run made, those finishing after the schedule included, is the stage's:
    # 20 on a quiet machine; a loaded one may drop a late arrival or two (counted as dropped),
    # never lose a made request from the stage (a loaded machine's run: 14 of 20 in the stage,
    # which was read as a loss).
    made = summary["metrics"]["http_reqs"]["count"]
    dropped = summary["metrics"].get("dropped_iterations", {}).get("count", 0)
    assert made + dropped == 20 and made >= 10
    assert row["requests"] == made and row["p95_ms"] > 900
    assert stages["scenarios"]["up"]["verdict"] != "held"
