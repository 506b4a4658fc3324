"""A threshold filtering on an ``endpoint`` or ``name`` no device of the run requests is
refused at load (exit 104) when every device is a built-in kind, whose requests are known.

Before, ``http_req_duration{endpoint:/api/esp32/upload}`` (the upload route is
``/api/esp32/audio/upload``) with ``p(95)<0.001`` printed "✓ ... observed 0 (no samples)" and
the run exited 0 whatever the uploads took — the false green ``{check:NAME}`` filters were
refused for (a Python device names its own requests, so with one in the run any value goes).
"""

from __future__ import annotations

import pathlib

import pytest

from scfleet_core.errors import ConfigError
from simulator.config import load_config
from tests.support.small_run import SMALL_RUN, SMALL_UPLOAD

AUTH = SMALL_RUN.replace("[scenarios.up]", "[scenarios.auth]") + (
    '[scenarios.auth.device]\nkind = "auth_flow"\naccounts_csv = "a.csv"\n'
)


def _write(tmp_path: pathlib.Path, threshold: str, scenario: str = SMALL_UPLOAD) -> pathlib.Path:
    (tmp_path / "a.csv").write_text("username,password\nu1,p1\nu2,p2\n")
    p = tmp_path / "t.toml"
    expr = {"http_req_failed": "rate<0.01", "http_reqs": "count>0"}.get(
        threshold.split("{")[0], "p(95)<2000"
    )
    p.write_text(scenario + f'[thresholds]\n"{threshold}" = ["{expr}"]\n')
    return p


@pytest.mark.parametrize(
    ("threshold", "says"),
    [
        (
            "http_req_duration{endpoint:/api/esp32/upload}",
            "did you mean '/api/esp32/audio/upload'?",
        ),
        (
            "http_req_failed{name:/api/esp32/audio/uplaod}",
            "did you mean '/api/esp32/audio/upload'?",
        ),
        ("http_reqs{endpoint:/api/auth/verify}", "requested: ['/api/esp32/audio/upload']"),
    ],
)
def test_an_endpoint_no_device_requests_is_refused(
    tmp_path: pathlib.Path, threshold: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, threshold))
    said = str(err.value)
    assert says in said and threshold in said, said


@pytest.mark.parametrize(
    ("threshold", "scenario"),
    [
        ("http_req_duration{endpoint:/api/esp32/audio/upload}", SMALL_UPLOAD),
        ("http_req_duration{name:/api/esp32/audio/upload}", SMALL_UPLOAD),
        ("http_req_duration{endpoint:/api/auth/login}", AUTH),
        ("http_req_duration{endpoint:/api/auth/verify}", AUTH),
        (  # a Python device names its own requests
            "http_req_duration{endpoint:/anything}",
            SMALL_UPLOAD.replace('"iot_upload"', '"python:simulator.builtin_devices:IotUpload"'),
        ),
        (  # a scenario's own tag takes any value
            "http_req_duration{name:mine}",
            SMALL_UPLOAD.replace(
                "[scenarios.up.device]", 'tags = { name = "mine" }\n[scenarios.up.device]'
            ),
        ),
    ],
)
def test_endpoints_the_devices_request_are_accepted(
    tmp_path: pathlib.Path, threshold: str, scenario: str
) -> None:
    load_config(_write(tmp_path, threshold, scenario))
