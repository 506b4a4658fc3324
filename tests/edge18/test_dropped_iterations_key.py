"""``dropped_iterations`` is in ``summary.json``'s k6 ``metrics`` (and ``handle-summary.json``)
only when an iteration was dropped or a threshold names it, as k6 writes its export: k6 lists a
metric once a sample came, and it sends a ``dropped_iterations`` sample per drop only; so are
``iterations`` and ``iteration_duration`` once an iteration completed (a run whose only
iteration its graceful stop cut: k6 1.1 listed neither, scfleet ``iterations`` 0 and an
``iteration_duration`` of zeros).

Found side by side with k6 1.1.0: 2 VUs x 2 iterations (per-vu-iterations), nothing dropped:
k6's export had no ``dropped_iterations``, scfleet's ``{"count": 0, "rate": 0.0}`` (its counter
is made when the scenario is), so the two exports of one run differed by a key. The count stays
in the ``scfleet`` section.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from answering import answering
from k6_side import needs_k6, run_k6

from scfleet import api

RUN = """[scenarios.up]
executor = "EXEC"
[scenarios.up.device]
kind = "iot_upload"
"""
NONE_DROPPED = 'per-vu-iterations"\nvus = 2\niterations = 2\n#"'
SOME_DROPPED = (  # 1 device busy 0.3 s, 10/s for 0.5 s: 5 due, 2 start, 3 dropped
    'constant-arrival-rate"\nrate = 10\nduration = "0.5s"\npre_allocated_devices = 1\n#"'
)


def _run(
    tmp_path: pathlib.Path, executor: str, extra: str = "", delay: float = 0.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "t.toml"
    path.write_text(RUN.replace('EXEC"', executor) + extra)
    with answering(200, delay) as url:
        out = api.run(api.load(path, target=url), out=tmp_path / "run", workers=1)
    summary = json.loads(out.files["summary.json"].read_text())
    handle = json.loads(out.files["handle-summary.json"].read_text())
    return summary, handle


def test_no_drop_no_key(tmp_path: pathlib.Path) -> None:
    summary, handle = _run(tmp_path, NONE_DROPPED)
    assert summary["metrics"]["iterations"]["count"] == 4
    assert "dropped_iterations" not in summary["metrics"], summary["metrics"]["dropped_iterations"]
    assert "dropped_iterations" not in handle["metrics"]
    assert summary["scfleet"]["metrics"]["dropped_iterations"]["count"] == 0


@pytest.mark.slow
def test_a_drop_or_a_threshold_lists_it(tmp_path: pathlib.Path) -> None:
    summary, handle = _run(tmp_path / "a", SOME_DROPPED, delay=0.3)
    dropped = summary["metrics"]["dropped_iterations"]["count"]
    assert dropped >= 1 and handle["metrics"]["dropped_iterations"]["values"]["count"] == dropped
    summary, _ = _run(
        tmp_path / "b", NONE_DROPPED, '[thresholds]\ndropped_iterations = ["count<1"]\n'
    )
    assert summary["metrics"]["dropped_iterations"]["count"] == 0
    assert summary["metrics"]["dropped_iterations"]["thresholds"] == {"count<1": False}


@pytest.mark.slow
@needs_k6
def test_k6_lists_it_only_once_dropped(tmp_path: pathlib.Path) -> None:
    script = (
        "import http from 'k6/http';\n"
        "export const options = { scenarios: { up: { executor: 'per-vu-iterations', vus: 2,"
        " iterations: 2 } } };\n"
        "export default function () { http.post('URL/api/esp32/audio/upload', 'x'); }\n"
    )
    with answering(200, 0.0) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    assert summary["metrics"]["iterations"]["count"] == 4
    assert "dropped_iterations" not in summary["metrics"]


CUT = 'constant-vus"\nvus = 1\nduration = "1s"\ngraceful_stop = "0s"\n#"'


@pytest.mark.slow
def test_no_iteration_completed_no_iteration_keys(tmp_path: pathlib.Path) -> None:
    summary, handle = _run(tmp_path, CUT, delay=1.5)  # the one upload is cut at 1 s
    assert summary["scfleet"]["metrics"]["interrupted_iterations"]["count"] == 1
    for name in ("iterations", "iteration_duration"):
        assert name not in summary["metrics"], summary["metrics"][name]
        assert name not in handle["metrics"]
    assert summary["scfleet"]["metrics"]["iterations"]["count"] == 0


@pytest.mark.slow
@needs_k6
def test_k6_lists_no_iteration_keys_when_none_completed(tmp_path: pathlib.Path) -> None:
    script = (
        "import http from 'k6/http';\n"
        "export const options = { scenarios: { up: { executor: 'constant-vus', vus: 1,"
        " duration: '1s', gracefulStop: '0s' } } };\n"
        "export default function () { http.post('URL/api/esp32/audio/upload', 'x'); }\n"
    )
    with answering(200, 1.5) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    assert "iterations" not in summary["metrics"]
    assert "iteration_duration" not in summary["metrics"]
    assert "data_sent" in summary["metrics"]
