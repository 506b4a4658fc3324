"""A threshold filtering on a lower-case ``method`` is refused at load, not a false green.

The engine records every request's method upper-case (a Python device's ``post`` too), so
``http_req_duration{method:post}`` matches no sample. Before, ``p(95)<0.001`` on it printed
"✓ ... observed 0 (no samples)" and the run exited 0 while ``{method:POST}`` observed 140 ms
(5 uploads a second on the embedded server) — as ``expected_response:True`` did before
tests/probe14/test_threshold_tag_values.py.
"""

from __future__ import annotations

import pathlib

import pytest

from scfleet_core.errors import ConfigError
from simulator.config import load_config
from tests.support.small_run import SMALL_UPLOAD


def _write(tmp_path: pathlib.Path, threshold: str) -> pathlib.Path:
    p = tmp_path / "t.toml"
    p.write_text(SMALL_UPLOAD + f'[thresholds]\n"{threshold}" = ["p(95)<2000"]\n')
    return p


@pytest.mark.parametrize("value", ["post", "Post", "get"])
def test_a_method_the_engine_never_writes_is_refused(tmp_path: pathlib.Path, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, f"http_req_duration{{method:{value}}}"))
    said = str(err.value)
    assert f"did you mean {value.upper()}?" in said and f"method:{value}" in said, said


@pytest.mark.parametrize("value", ["POST", "GET", "PATCH"])
def test_upper_case_methods_are_accepted(tmp_path: pathlib.Path, value: str) -> None:
    load_config(_write(tmp_path, f"http_req_duration{{method:{value}}}"))
