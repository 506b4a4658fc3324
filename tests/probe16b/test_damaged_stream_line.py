"""``scfleet report`` rebuilding from a run.ndjson with a damaged line *before* its last does
not pass the run off as whole: that line's second is in no figure.

Found by garbling the middle tick line of a whole 2 s run's stream (summary.json removed, as
after a kill while the folder was written): the rebuild read 11 of 20 requests with
``"interrupted": false`` and ``scfleet compare BASE REBUILT --fail-on 'p(95)+50%'`` passed,
exit 0 — a second of the run gone without a word. Only the last line may be torn (the write a
kill cut); one before it means the file was damaged.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from answering import answering

from scfleet import api

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 10
duration = "3s"
pre_allocated_devices = 2
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 1600
"""


@pytest.mark.timeout(180)
def test_a_damaged_line_inside_the_stream_marks_the_rebuild_unfinished(
    tmp_path: Path, scfleet: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    (tmp_path / "up.toml").write_text(SCENARIO)
    base, new = tmp_path / "base", tmp_path / "new"
    with answering(200, 0.0) as url:
        api.run(api.load(tmp_path / "up.toml"), target=url, out=base, workers=1)
    new.mkdir()
    lines = (base / "run.ndjson").read_text().splitlines(keepends=True)
    ticks = [i for i, line in enumerate(lines) if line.startswith('{"type":"tick"')]
    assert len(ticks) >= 3 and lines[-1].startswith('{"type":"end"')
    hit = ticks[1]
    lines[hit] = lines[hit][: len(lines[hit]) // 2] + "\n"
    (new / "run.ndjson").write_text("".join(lines))

    rebuilt = scfleet("report", str(new), timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    summary = json.loads((new / "summary.json").read_text())
    whole = json.loads((base / "summary.json").read_text())
    assert summary["metrics"]["http_reqs"]["count"] < whole["metrics"]["http_reqs"]["count"]
    assert summary["scfleet"]["state"]["interrupted"] is True
    (note,) = [n for n in summary["scfleet"]["notes"] if "damaged" in n]
    assert f"line {hit + 1}" in note, note

    gate = scfleet("compare", str(base), str(new), "--fail-on", "p(95)+50%", timeout=120)
    assert gate.returncode == 99, gate.stdout
    assert "FAIL  whole runs" in gate.stdout, gate.stdout
