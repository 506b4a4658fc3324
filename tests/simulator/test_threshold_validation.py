"""No false greens: a threshold k6 would refuse is refused before the first request (exit 104).

k6 1.1.0 refuses a threshold on a metric that does not exist and one whose aggregation the
metric's type lacks (``p(95)`` on a rate, ``rate`` on a trend, ``max`` on a gauge) before it
starts; a typo must never become a threshold with "no samples" that passes.
"""

from __future__ import annotations

import pathlib

import pytest
from raw_http import Counting

from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG, ConfigError
from simulator.config import load_config
from simulator.metrics import BUILTIN
from simulator.metrics.thresholds import parse_expression, parse_metric_key, validate_thresholds

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 5
duration = "2s"
pre_allocated_devices = 2
max_devices = 2

[thresholds]
"""


def write(tmp_path: pathlib.Path, thresholds: str) -> pathlib.Path:
    p = tmp_path / "t.toml"
    p.write_text(SCENARIO + thresholds + "\n")
    return p


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('http_req_duraton = ["p(95)<2000"]', "did you mean http_req_duration?"),
        ('"http_req_faild{scenario:up}" = ["rate<0.01"]', "did you mean http_req_failed?"),
        ('chekcs = ["rate>0.99"]', "did you mean checks?"),
        ('my_custom_metric = ["count>0"]', "no metric named 'my_custom_metric'"),
        ('http_req_failed = ["p(95)<1"]', "http_req_failed is a rate metric, which has no p(95)"),
        ('http_req_duration = ["rate<0.01"]', "http_req_duration is a trend metric"),
        ('http_req_duration = ["count>10"]', "which has no count"),
        ('vus = ["max<100"]', "vus is a gauge metric, which has no max (use value)"),
        ('vus_max = ["min>1"]', "which has no min"),
        ('http_reqs = ["avg<3"]', "http_reqs is a counter metric, which has no avg"),
        ('checks = [{ threshold = "count>1", abort_on_fail = true }]', "checks is a rate"),
    ],
)
def test_refused_at_load_time_with_one_line(tmp_path: pathlib.Path, line: str, needle: str) -> None:
    path = write(tmp_path, line)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert needle in msg
    assert msg.startswith(f"{path}: thresholds.")
    assert "\n" not in msg
    assert info.value.exit_code == EXIT_INVALID_CONFIG == 104


@pytest.mark.parametrize(
    "line",
    [
        'http_req_duration = ["p(99.9)<10", "avg<5", "med<4", "min>0", "max<9"]',
        'http_reqs = ["count>0", "rate>1"]',
        'checks = ["rate>0.99"]',  # known even when no scenario declares a check
        'boards_lost = ["count==0"]',  # known even when no [boards] table is given
        'vus = ["value>=0"]',
        'dropped_iterations = ["count<1"]',
        '"iteration_duration{scenario:up}" = ["p(95)<1000"]',
    ],
)
def test_k6_valid_thresholds_load(tmp_path: pathlib.Path, line: str) -> None:
    assert load_config(write(tmp_path, line)).thresholds


def test_callable_on_parsed_thresholds_with_a_metric_table() -> None:
    """``scfleet inspect`` and others call it directly; the table defaults to BUILTIN."""
    from simulator.metrics.thresholds import Threshold

    metric, tags = parse_metric_key("boards_lost")
    th = Threshold("boards_lost", metric, tags, parse_expression("count<1"))
    validate_thresholds([th])
    with pytest.raises(ConfigError, match="no metric named 'boards_lost'"):
        validate_thresholds([th], "x.toml", {"http_reqs": "counter"})
    assert {"checks", "boards_lost", "boards_rejoined", "vus_max"} <= set(BUILTIN)


def test_run_exits_104_before_the_first_request(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    hits_server: tuple[str, type[Counting]],
) -> None:
    url, handler = hits_server
    path = write(tmp_path, 'http_req_duraton = ["p(95)<2000"]')
    code = main(["run", str(path), "--target", url, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 104
    assert "did you mean http_req_duration?" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert handler.hits == 0  # not even the health check
    assert not (tmp_path / "run").exists()


def test_inspect_refuses_the_same_way(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'http_req_failed = ["p(95)<1"]')
    code = main(["inspect", str(path)])
    err = capsys.readouterr().err
    assert code == 104
    assert "http_req_failed is a rate metric, which has no p(95) (use rate)" in err
    assert err.count("\n") == 1
