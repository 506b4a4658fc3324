"""Two upload scenarios may not send the same device IDs.

Found by probe13 with two ``iot_upload`` scenarios and the default ``id_pattern``/``id_start``,
10/s each for 3 s, against the embedded server: the summary counted 60 uploads, all 200, but the
ledger held 30 rows from 5 devices — each scenario numbers its uploads from sequence 0 and the
server de-duplicates (device, sequence), so it answered one scenario's uploads as the other's
retries (``200 {"duplicate": true}``, nothing stored).
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from id_scenarios import arrival as _arrival
from id_scenarios import cli_refusal, refused

from scfleet import api
from simulator.config import parse_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _refused(scenarios: dict[str, Any]) -> str:
    return refused(scenarios, "two.toml")


def test_the_default_ids_in_two_upload_scenarios_are_refused_naming_both_and_the_free_start() -> (
    None
):
    text = _refused({"a": _arrival(), "b": _arrival()})
    assert text.startswith("two.toml: scenarios.b.device.id_start: ")
    assert "'a'" in text and "'b'" in text and "'esp32-000001'" in text
    assert "id_start = 6" in text  # a uses 1..5
    assert "\n" not in text


def test_the_range_is_the_most_devices_the_executor_may_use() -> None:
    # a grows to max_devices 8 (IDs 1..8): b from 8 overlaps it, and its first free start is 9
    a = {**_arrival(), "max_devices": 8}
    assert "id_start = 9" in _refused({"a": a, "b": _arrival(id_start=8)})
    # a closed model uses its vus; a ramp its largest target
    vus = {"executor": "constant-vus", "vus": 3, "duration": "1s", "device": {}}
    assert "id_start = 4" in _refused({"up": vus, "b": _arrival(id_start=3)})
    ramp = {
        "executor": "ramping-vus",
        "stages": [{"duration": "1s", "target": 7}, {"duration": "1s", "target": 2}],
        "device": {"kind": "iot_upload"},
    }
    assert "id_start = 8" in _refused({"r": ramp, "b": _arrival(id_start=7)})


def test_the_first_free_start_clears_every_earlier_scenario() -> None:
    text = _refused({"a": _arrival(), "b": _arrival(id_start=6), "c": _arrival(3, id_start=4)})
    assert "scenarios.c.device.id_start" in text and "'a'" in text
    assert "id_start = 11" in text  # 1..5 and 6..10 taken
    # a gap wide enough before a later range is free
    text = _refused({"a": _arrival(3, id_start=4), "b": _arrival(3, id_start=5)})
    assert "id_start = 1" in text  # 1..3 is free, before a's 4..6


@pytest.mark.parametrize(
    "b",
    [
        _arrival(id_start=6),  # after a's last device
        _arrival(id_pattern="sensor-{n:04d}"),  # other IDs
        {**_arrival(), "device": {"kind": "auth_flow"}},  # logins carry no sequence
        {**_arrival(), "device": {"kind": "ai_analysis"}},  # nor do analyses
    ],
)
def test_disjoint_ranges_and_unsequenced_devices_load(b: dict[str, Any]) -> None:
    cfg = parse_config({"scenarios": {"a": _arrival(), "b": b}}, "two.toml")
    assert [s.name for s in cfg.scenarios] == ["a", "b"]


def test_the_cli_says_so_on_one_line_with_exit_104(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = cli_refusal(tmp_path / "two.toml", "3s", {"first": "", "second": ""}, capsys)
    assert "id_start = 6" in err


def test_the_shipped_scenario_files_still_load() -> None:
    for path in sorted((ROOT / "configs").glob("*.toml")):
        if path.name != "boards.toml":  # a board registry, not a scenario file
            api.load(path)
