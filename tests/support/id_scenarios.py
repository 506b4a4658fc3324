"""Scenario tables for the device-ID collision tests: an upload scenario over a known range of
IDs, the one-line refusal parse_config gives two that overlap, and the CLI's (exit 104).
Shared by tests/simulator/test_shared_device_ids.py and test_device_id_collisions.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scfleet.cli import main
from scfleet_core.errors import ConfigError
from simulator.config import parse_config


def arrival(devices: int = 5, **device: Any) -> dict[str, Any]:
    """10/s for 3 s over ``devices`` pre-allocated devices (IDs id_start .. +devices-1)."""
    return {
        "executor": "constant-arrival-rate",
        "rate": 10,
        "duration": "3s",
        "pre_allocated_devices": devices,
        "device": {"kind": "iot_upload", **device},
    }


def refused(scenarios: dict[str, Any], path: str) -> str:
    """parse_config's refusal of ``scenarios`` as if read from ``path``."""
    with pytest.raises(ConfigError) as err:
        parse_config({"scenarios": scenarios}, path)
    return str(err.value)


def cli_refusal(
    path: Path, duration: str, device_lines: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> str:
    """``scfleet run`` of upload scenarios ``first`` and ``second`` (each's extra device lines
    given): exit 104 with one line naming the file and both; returns that line."""
    path.write_text(
        "".join(
            f'[scenarios.{n}]\nexecutor = "constant-arrival-rate"\nrate = 10\n'
            f'duration = "{duration}"\npre_allocated_devices = 5\n'
            f'[scenarios.{n}.device]\nkind = "iot_upload"\n{device_lines[n]}'
            for n in ("first", "second")
        )
    )
    code = main(["run", str(path)])
    out, err = capsys.readouterr()
    assert code == 104
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert str(path) in err and "'first'" in err and "'second'" in err
    return err
