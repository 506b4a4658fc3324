"""A run aborted by a threshold reads the same with or without workers.

Found with ``http_reqs = [{threshold = "count<30", abort_on_fail = true}]`` at 20/s: both runs
stopped at 41 requests with exit 99 and ``abortedBy``, but summary.json's ``state.interrupted``
was false with ``--workers 1`` and true with ``--workers 2`` (each worker took the
coordinator's stop for a Ctrl-C), so one event read two ways in "identical" summaries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scfleet import api

_TOML = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "8s"
pre_allocated_devices = 10
[scenarios.up.device]
chunk_bytes = 200
[thresholds]
http_reqs = [{ threshold = "count<30", abort_on_fail = true }]
[audio]
profiles = 1
seconds = 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_an_aborted_run_is_aborted_not_interrupted(tmp_path: Path, workers: int) -> None:
    cfg_file = tmp_path / "a.toml"
    cfg_file.write_text(_TOML)
    outcome = api.run(api.load(cfg_file), out=tmp_path / "run", workers=workers)
    assert outcome.exit_code == 99
    state = json.loads((tmp_path / "run" / "summary.json").read_text())["scfleet"]["state"]
    assert state["abortedBy"] == "http_reqs: count<30"
    assert state["interrupted"] is False, state
