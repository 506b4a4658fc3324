"""``scfleet report`` on a folder whose run finished (its stream's end line written) but whose
summary.json was not (killed while the folder was written: devices.csv of a large fleet, the
report) rebuilds the run as it ended — whole or aborted — not as a run that did not finish.

Found by removing summary.json and the reports from a whole 1 s run and running ``scfleet
report`` on it: summary.json said ``"interrupted": true``, its note "the run did not finish",
``abortedBy`` lost for a run a threshold aborted, and the duration was the last tick's; so
``scfleet compare --fail-on`` refused the whole run ("whole runs": interrupted).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from answering import answering

from scfleet import api, cli

RUN = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 5
duration = "{duration}"
pre_allocated_devices = 2
[thresholds]
{threshold}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("duration", "threshold", "aborted"),
    [
        ("1s", 'http_reqs = ["count>0"]', None),
        (
            "3s",
            'http_reqs = [{ threshold = "count<3", abort_on_fail = true }]',
            "http_reqs: count<3",
        ),
    ],
)
def test_a_finished_stream_rebuilds_the_run_as_it_ended(
    tmp_path: Path, duration: str, threshold: str, aborted: str | None
) -> None:
    (tmp_path / "s.toml").write_text(RUN.format(duration=duration, threshold=threshold))
    run_dir = tmp_path / "r"
    with answering(200, 0.0) as url:
        out = api.run(api.load(tmp_path / "s.toml"), target=url, out=run_dir, workers=1)
    whole = json.loads((run_dir / "summary.json").read_text())
    assert whole["scfleet"]["state"]["abortedBy"] == aborted
    for name in ("summary.json", "summary.txt", "report.html", "junit.xml", "handle-summary.json"):
        (run_dir / name).unlink(missing_ok=True)
    assert cli.main(["report", str(run_dir)]) == 0
    doc = json.loads((run_dir / "summary.json").read_text())
    state = doc["scfleet"]["state"]
    assert state["interrupted"] is False and state["abortedBy"] == aborted, state
    assert state["testRunDurationMs"] == pytest.approx(
        whole["scfleet"]["state"]["testRunDurationMs"]
    )
    assert not any("did not finish" in n for n in doc["scfleet"]["notes"]), doc["scfleet"]["notes"]
    assert doc["metrics"]["http_reqs"]["count"] == whole["metrics"]["http_reqs"]["count"]
    assert out.exit_code == (0 if aborted is None else 99)
