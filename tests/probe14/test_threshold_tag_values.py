"""A tag filter on a value the engine never writes is refused at load (exit 104), not a
threshold with "no samples" that passes.

Found against a loopback server answering every other upload with 500 (10/s for 2 s):
``http_req_failed{expected_response:True}`` ``rate<0.01`` (k6 writes ``true``),
``http_req_duration{kind:virtaul}``, ``http_reqs{status:5xx}`` ``count<1`` and
``http_req_duration{proto:HTTP/2}`` all printed ✓ and the run exited 0 with 9 of 18 requests
failed.
"""

from __future__ import annotations

import pathlib

import pytest

from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG, ConfigError
from simulator.config import load_config

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 5
duration = "2s"
pre_allocated_devices = 2
{tags}
[thresholds]
{threshold} = ["{expr}"]
"""


def _write(tmp_path: pathlib.Path, threshold: str, expr: str, tags: str = "") -> pathlib.Path:
    p = tmp_path / "t.toml"
    p.write_text(SCENARIO.format(threshold=threshold, expr=expr, tags=tags))
    return p


@pytest.mark.parametrize(
    ("threshold", "expr", "says"),
    [
        ('"http_req_failed{expected_response:True}"', "rate<0.01", "did you mean true?"),
        ('"http_req_duration{kind:virtaul}"', "p(95)<1", "did you mean virtual?"),
        ('"http_reqs{status:5xx}"', "count<1", "status is a whole number"),
        ('"http_req_duration{proto:HTTP/2}"', "p(95)<1", "HTTP/1.1"),
        ('"http_reqs{error_code:timeout}"', "count<1", "error_code is a whole number"),
    ],
)
def test_a_value_no_sample_carries_is_refused(
    tmp_path: pathlib.Path, threshold: str, expr: str, says: str
) -> None:
    path = _write(tmp_path, threshold, expr)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert says in str(err.value) and threshold.strip('"') in str(err.value), err.value


def test_the_cli_says_so_in_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, '"http_req_failed{expected_response:True}"', "rate<0.01")
    assert main(["inspect", str(path)]) == EXIT_INVALID_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected_response 'True'" in err, err


@pytest.mark.parametrize(
    "threshold",
    [
        '"http_req_failed{expected_response:false}"',
        '"http_reqs{status:500,kind:physical}"',
        '"http_reqs{error_code:1220}"',
        '"http_req_duration{proto:HTTP/1.1}"',
    ],
)
def test_values_the_engine_writes_are_accepted(tmp_path: pathlib.Path, threshold: str) -> None:
    expr = "rate<0.01" if "failed" in threshold else "p(95)<1"
    expr = "count<1" if "http_reqs" in threshold else expr
    load_config(_write(tmp_path, threshold, expr))


def test_a_scenarios_own_tag_takes_any_value(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, '"http_reqs{kind:lab}"', "count<1", tags='tags = { kind = "lab" }')
    load_config(path)
