"""A threshold on one check names a check the scenarios declare.

Found with ``"checks{check:is status 2000}" = ["rate>0.99"]`` beside a check named
``is status 200``: the threshold had no samples, passed ("observed no samples"), and a run
whose every check failed exited 0 on it — the misspelt-metric false green, one level down
(a misspelt ``{scenario:...}`` is already refused).
"""

from __future__ import annotations

from typing import Any

import pytest

from scfleet_core.errors import ConfigError
from simulator.config import parse_config


def _doc(threshold_key: str, device: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "scenarios": {
            "up": {
                "executor": "constant-arrival-rate",
                "rate": 5,
                "duration": "1s",
                "pre_allocated_devices": 2,
                "device": device or {"kind": "iot_upload"},
                "checks": [{"name": "is status 200", "status": 200}, {"status": 201}],
            }
        },
        "thresholds": {threshold_key: ["rate>0.99"]},
    }


def test_a_misspelt_check_name_is_refused_with_the_nearest() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_doc("checks{check:is status 2000}"), "c.toml")
    text = str(err.value)
    assert 'thresholds."checks{check:is status 2000}"' in text
    assert "did you mean 'is status 200'?" in text


@pytest.mark.parametrize("name", ["is status 200", "status in [201]"])
def test_declared_check_names_are_accepted(name: str) -> None:
    parse_config(_doc(f"checks{{check:{name}}}"))


def test_a_python_device_may_name_its_own_checks() -> None:
    device = {"kind": "python:simulator.builtin_devices:IotUpload"}
    parse_config(_doc("checks{check:accepted}", device))
