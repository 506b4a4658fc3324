"""Scenario files: parsing into typed values, overrides, time scaling, one-line errors."""

from __future__ import annotations

import pathlib

import pytest

from scfleet.cli import main
from scfleet_core.errors import ConfigError
from simulator.config import (
    ConstantArrivalRate,
    IotUploadDevice,
    RampingArrivalRate,
    RampingVUs,
    load_config,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]

GOOD = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 100
time_unit = "1s"
duration = "10m"
pre_allocated_devices = 50
max_devices = 200
think_time = "5s"

[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 16000
headers = { "X-Firmware" = "1.2" }

[scenarios.ramp]
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "2m", target = 15 }, { duration = "6m", target = 15 }]
start_time = "1m"
device = { id_start = 201 }  # up's devices are 1..200

[thresholds]
"http_req_duration{scenario:up}" = ["p(95)<2000", { threshold = "p(99)<5000", abort_on_fail = true, delay_abort_eval = "10s" }]
http_req_failed = ["rate<0.01"]
"""


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    p = tmp_path / "scenario.toml"
    p.write_text(text)
    return p


def test_parses_into_typed_values(tmp_path: pathlib.Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    up, ramp = cfg.scenarios
    assert isinstance(up.executor, ConstantArrivalRate)
    assert up.executor.rate == 100 and up.executor.duration == 600
    assert up.executor.max_devices == 200 and up.think_time == 5
    assert isinstance(up.device, IotUploadDevice) and up.device.chunk_bytes == 16000
    assert dict(up.device.headers) == {"X-Firmware": "1.2"}
    assert isinstance(ramp.executor, RampingVUs) and ramp.start_time == 60
    assert len(cfg.thresholds) == 3
    th = cfg.thresholds[1]
    assert th.metric == "http_req_duration" and th.tags == (("scenario", "up"),)
    assert th.abort_on_fail and th.delay_abort_eval == 10


def test_time_scale_scales_durations_not_rates_or_sleeps(tmp_path: pathlib.Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), time_scale=0.01)
    up, ramp = cfg.scenarios
    assert up.executor.duration == pytest.approx(6.0)  # type: ignore[union-attr]
    assert up.executor.rate == 100  # type: ignore[union-attr]
    assert up.think_time == 5
    assert ramp.start_time == pytest.approx(0.6)
    assert [s.duration for s in ramp.executor.stages] == pytest.approx([1.2, 3.6])  # type: ignore[union-attr]
    assert up.graceful_stop == 30


def test_set_overrides_any_key(tmp_path: pathlib.Path) -> None:
    cfg = load_config(
        write(tmp_path, GOOD),
        [
            "scenarios.up.rate=250",
            "scenarios.up.device.keep_alive=false",
            "target.url=http://127.0.0.1:9",
        ],
    )
    assert cfg.scenarios[0].executor.rate == 250  # type: ignore[union-attr]
    assert cfg.scenarios[0].device.keep_alive is False
    assert cfg.target.url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("text", "overrides", "needle"),
    [
        ("[scenarios.a\nexecutor=", [], "invalid TOML"),
        (
            '[scenarios.a]\nexecutor = "shared-iterations"',
            [],
            "scenarios.a.executor: unknown value",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "10x"',
            [],
            "scenarios.a.duration: expected a duration",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"\nvuz = 3',
            [],
            "scenarios.a.vuz: unknown key",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-arrival-rate"\nduration = "1s"\n'
            "pre_allocated_devices = 1",
            [],
            "scenarios.a.rate: is required",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"\n[thresholds]\n'
            'http_req_duration = ["p95<10"]',
            [],
            "bad threshold expression",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"\n[thresholds]\n'
            '"http_req_duration{scenario:nope}" = ["p(95)<10"]',
            [],
            "no scenario named 'nope'",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"',
            ["noequals"],
            "expected dotted.key=value",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"',
            ["scenarios.a.vus=-2"],
            "scenarios.a.vus: expected a whole number >= 1",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"\n[scenarios.a.device]\n'
            "chunk_bytes = 33",
            [],
            "scenarios.a.device.chunk_bytes: must be even",
        ),
        (
            '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"\n[target]\nurl = "ftp://x"',
            [],
            "target.url: expected a URL",
        ),
        ("[other]\nx = 1", [], "scenarios: at least one"),
    ],
)
def test_errors_name_file_and_key(
    tmp_path: pathlib.Path, text: str, overrides: list[str], needle: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    msg = str(info.value)
    assert needle in msg
    assert "\n" not in msg
    if "--set" not in msg:
        assert str(path) in msg


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "does/not/exist.toml"], "does/not/exist.toml: no such file"),
        (["run", "{cfg}", "--set", "scenarios.a.executor=warp"], "unknown value 'warp'"),
        (["run", "{cfg}", "--time-scale", "0"], "--time-scale: expected a factor in"),
        (["run", "{cfg}", "--target", "not-a-url"], "--target: expected a URL"),
    ],
)
def test_cli_config_errors_are_one_line_exit_104(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    cfg = write(tmp_path, '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"')
    code = main([a.replace("{cfg}", str(cfg)) for a in argv])
    err = capsys.readouterr().err
    assert code == 104
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2


def test_unreachable_target_names_url(
    tmp_path: pathlib.Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, '[scenarios.a]\nexecutor = "constant-vus"\nduration = "1s"')
    url = f"http://127.0.0.1:{free_port}"
    code = main(["run", str(cfg), "--target", url, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 103
    assert f"cannot reach {url}: connection refused" in err
    assert "Traceback" not in err


SCENARIO_FILES = sorted(
    p.name for p in (ROOT / "configs").glob("*.toml") if "[scenarios." in p.read_text()
)


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_shipped_configs_parse(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.scenarios


def test_iot_upload_config_matches_seed() -> None:
    cfg = load_config(ROOT / "configs" / "iot_upload.toml")
    (sc,) = cfg.scenarios
    assert isinstance(sc.executor, RampingArrivalRate)
    levels = sorted({s.target for s in sc.executor.stages})
    assert levels == [50, 100, 200]
    assert sc.device.sample_rate == 16000  # type: ignore[union-attr]
    exprs = {(t.metric, t.expr.source) for t in cfg.thresholds}
    assert ("http_req_duration", "p(95)<2000") in exprs
    assert ("http_req_failed", "rate<0.01") in exprs
