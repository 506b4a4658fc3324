"""k6's habits: quick flags, ``${VAR}`` / ``-e``, ``--summary-export``, and ``scfleet inspect``.

Most cases go through the real CLI (``inspect --json`` loads a file exactly as ``run`` does and
contacts nothing); one run against the embedded server checks that the flags really drive it.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import pytest

from scfleet.cli import main
from scfleet_core.errors import ConfigError
from simulator.config import ConstantArrivalRate, RampingArrivalRate, load_config
from simulator.config.quickflags import QuickFlags
from simulator.executors import expected_iterations

ROOT = pathlib.Path(__file__).resolve().parents[2]

ONE = """
[scenarios.up]
executor = "ramping-arrival-rate"
start_rate = 5
time_unit = "1s"
pre_allocated_devices = 4
max_devices = 8
stages = [{ duration = "10s", target = 5 }]
graceful_stop = "3s"

[thresholds]
http_req_failed = ["rate<0.01"]
"""

TWO = """
[scenarios.a]
executor = "constant-vus"
vus = 2
duration = "10s"
[scenarios.b]
executor = "constant-arrival-rate"
rate = 10
duration = "20s"
pre_allocated_devices = 3
device = { id_start = 1001 }  # a's devices are 1..
[thresholds]
"http_reqs{scenario:b}" = ["count>0"]
"""


def write(tmp_path: pathlib.Path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def inspect(capsys: Any, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["inspect", "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def executor_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    keep = ("executor", "rate", "duration", "start_rate", "stages", "vus", "start_vus")
    keep += ("iterations", "max_duration", "pre_allocated_devices", "max_devices", "time_unit")
    return {k: v for k, v in doc["config"]["scenarios"][name].items() if k in keep}


# --------------------------------------------------------------------------- quick flags


def test_vus_and_duration_make_a_constant_vus_scenario(tmp_path: pathlib.Path, capsys: Any) -> None:
    code, doc, err = inspect(capsys, write(tmp_path, ONE), "--vus", "7", "--duration", "30s")
    assert code == 0, err
    assert doc is not None
    assert executor_of(doc, "up") == {"executor": "constant-vus", "vus": 7, "duration": 30.0}
    (plan,) = doc["scenarios"]
    assert (plan["executor"], plan["peak_devices"], plan["duration_s"]) == ("constant-vus", 7, 30)
    assert plan["graceful_stop_s"] == 3  # the rest of the scenario stays as the file says
    assert doc["thresholds"][0]["metric_key"] == "http_req_failed"


def test_rate_keeps_the_device_pool_and_time_scale_applies(
    tmp_path: pathlib.Path, capsys: Any
) -> None:
    code, doc, err = inspect(
        capsys, write(tmp_path, ONE), "--rate", "20", "--duration", "1m", "--time-scale", "0.5"
    )
    assert code == 0, err
    assert doc is not None
    (plan,) = doc["scenarios"]
    assert plan["executor"] == "constant-arrival-rate" and plan["duration_s"] == 30
    assert plan["expected_iterations"] == 600 and plan["pre_allocated_devices"] == 4
    assert plan["peak_devices"] == 8


def test_stages_on_an_arrival_rate_scenario_ramp_the_rate(tmp_path: pathlib.Path) -> None:
    q = QuickFlags(stages=(_stage("10s", 10), _stage("20s", 40)))
    cfg = load_config(write(tmp_path, ONE), quick=q, env={})
    ex = cfg.scenarios[0].executor
    assert isinstance(ex, RampingArrivalRate)
    assert ex.start_rate == 5 and [(s.duration, s.target) for s in ex.stages] == [
        (10, 10),
        (20, 40),
    ]
    assert expected_iterations(ex) == 75 + 500


def _stage(d: str, t: float) -> Any:
    from simulator.config import Stage
    from simulator.durations import parse_duration

    return Stage(parse_duration(d), t)


def test_stage_flags_on_a_vu_scenario_make_ramping_vus(tmp_path: pathlib.Path, capsys: Any) -> None:
    path = write(tmp_path, TWO)
    code, doc, err = inspect(
        capsys, path, "--scenario", "a", "--stage", "5s:10", "--stage", "10s:0", "--vus", "2"
    )
    assert code == 0, err
    assert doc is not None
    assert executor_of(doc, "a") == {
        "executor": "ramping-vus",
        "start_vus": 2,
        "stages": [{"duration": 5.0, "target": 10.0}, {"duration": 10.0, "target": 0.0}],
    }
    # the other scenario runs as the file says
    assert executor_of(doc, "b")["executor"] == "constant-arrival-rate"
    assert executor_of(doc, "b")["rate"] == 10


def test_iterations_are_shared_over_vus_or_refused(tmp_path: pathlib.Path, capsys: Any) -> None:
    path = write(tmp_path, ONE)
    code, doc, err = inspect(capsys, path, "--iterations", "12", "--vus", "3")
    assert code == 0, err
    assert doc is not None
    assert doc["scenarios"][0]["max_iterations"] == 12
    assert executor_of(doc, "up")["iterations"] == 4
    code, _, err = inspect(capsys, path, "--iterations", "10", "--vus", "3")
    assert code == 104 and "does not divide evenly" in err and len(err.splitlines()) == 1


def test_quick_flags_on_several_scenarios_need_scenario(
    tmp_path: pathlib.Path, capsys: Any
) -> None:
    path = write(tmp_path, TWO)
    code, _, err = inspect(capsys, path, "--vus", "5", "--duration", "5s")
    assert code == 104
    assert err.startswith(f"scfleet: {path}: ") and "(a, b)" in err and "--scenario" in err
    assert len(err.splitlines()) == 1
    code, _, err = inspect(capsys, path, "--scenario", "zz", "--vus", "5")
    assert code == 104 and "no such scenario" in err


def test_duration_alone_keeps_the_executor_or_says_why_not(
    tmp_path: pathlib.Path, capsys: Any
) -> None:
    code, doc, err = inspect(capsys, write(tmp_path, TWO), "--scenario", "b", "--duration", "4s")
    assert code == 0, err
    assert doc is not None
    assert executor_of(doc, "b") == {
        "executor": "constant-arrival-rate",
        "rate": 10,
        "duration": 4.0,
        "pre_allocated_devices": 3,
    }
    code, _, err = inspect(capsys, write(tmp_path, ONE, "r.toml"), "--duration", "4s")
    assert code == 104 and "--stage" in err
    for path in (write(tmp_path, ONE, "r2.toml"), write(tmp_path, TWO, "t2.toml")):
        code, _, err = inspect(
            capsys,
            path,
            "--scenario",
            "a" if "t2" in path else "up",
            "--stage",
            "5s:3",
            "--duration",
            "9s",
        )
        assert code == 104 and "cannot be combined" in err, err


@pytest.mark.parametrize(
    "flag",
    [["--stage", "30s"], ["--vus", "0"], ["--rate", "-1"], ["--duration", "fast"], ["-e", "X"]],
)
def test_bad_flag_values_are_usage_errors(flag: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "configs/smoke.toml", *flag])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and flag[0] in err


# --------------------------------------------------------------------------- ${VAR}

ENV_FILE = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = "${RATE:-4}"
duration = "${DUR:-2s}"
pre_allocated_devices = 2
[scenarios.up.device]
id_pattern = "${PREFIX}-{n:04d}"
endpoint = "/api/$${literal}"
[target]
url = "${TARGET:-http://127.0.0.1:9}"
"""


def test_env_variables_defaults_and_dash_e(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, ENV_FILE)
    cfg = load_config(path, env={"PREFIX": "lab"})
    sc = cfg.scenarios[0]
    assert isinstance(sc.executor, ConstantArrivalRate)
    assert sc.executor.rate == 4 and sc.executor.duration == 2  # whole-value refs read as TOML
    assert sc.device.id_pattern == "lab-{n:04d}"
    assert sc.device.endpoint == "/api/${literal}"  # type: ignore[union-attr]
    assert cfg.target.url == "http://127.0.0.1:9"
    cfg = load_config(path, env={"PREFIX": "x", "RATE": "250", "TARGET": "http://10.0.0.5:5000"})
    assert cfg.scenarios[0].executor.rate == 250  # type: ignore[union-attr]
    assert cfg.target.url == "http://10.0.0.5:5000"


def test_undefined_variable_is_one_line_naming_file_key_and_variable(
    tmp_path: pathlib.Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, ENV_FILE)
    monkeypatch.delenv("PREFIX", raising=False)
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert str(exc.value).startswith(f"{path}: scenarios.up.device.id_pattern: ${{PREFIX}}")
    for cmd in ("inspect", "run"):  # run fails the same way, before starting anything
        assert main([cmd, path]) == 104
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and path in err and "${PREFIX}" in err, err
    monkeypatch.setenv("PREFIX", "from-env")
    assert main(["inspect", "--json", path]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["scenarios"]["up"]["device"]["id_pattern"] == "from-env-{n:04d}"
    assert main(["inspect", "--json", path, "-e", "PREFIX=cli", "-e", "RATE=9"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["scenarios"]["up"]["device"]["id_pattern"] == "cli-{n:04d}"
    assert doc["scenarios"][0]["expected_iterations"] == 18
    assert os.environ["PREFIX"] == "from-env"  # -e never leaks into the process environment


# --------------------------------------------------------------------------- inspect


def test_inspect_matches_run_errors_and_contacts_nothing(
    tmp_path: pathlib.Path, capsys: Any
) -> None:
    bad = write(
        tmp_path, ONE.replace('http_req_failed = ["rate<0.01"]', 'http_req_faild = ["rate<0.01"]')
    )
    assert main(["inspect", bad]) == 104
    err_inspect = capsys.readouterr().err
    assert main(["run", bad]) == 104
    err_run = capsys.readouterr().err
    assert err_inspect == err_run and len(err_run.splitlines()) == 1
    # an unreachable --target is not contacted by inspect (run would fail with 103)
    good = write(tmp_path, ONE, "good.toml")
    code, doc, err = inspect(capsys, good, "--target", "http://127.0.0.1:9")
    assert code == 0, err
    assert doc is not None and doc["target"] == "http://127.0.0.1:9"


def test_inspect_text_shows_schedules_and_thresholds(capsys: Any) -> None:
    assert main(["inspect", str(ROOT / "configs/seed_plan.toml"), "--time-scale", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "iot_upload: ramping-arrival-rate" in out
    assert "1072 iterations expected" in out and "200 devices at most (50 pre-allocated)" in out
    assert "http_req_failed{scenario:iot_upload} (rate): rate < 0.01" in out
    assert "CONFIGURATION" in out


# --------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_run_with_quick_flags_and_summary_export(tmp_path: pathlib.Path, scfleet: Any) -> None:
    export = tmp_path / "export.json"
    out = tmp_path / "run"
    res = scfleet(
        "run",
        "configs/smoke.toml",
        "--rate",
        "15",
        "--duration",
        "2s",
        "--quiet",
        "--no-color",
        "--summary-export",
        str(export),
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr + res.stdout
    doc = json.loads(export.read_text())
    assert export.read_bytes() == (out / "summary.json").read_bytes()
    # 15/s for 2 s, not the file's ramp: 30 arrivals, started or (a loaded machine's loop
    # reaching them late) dropped and counted, as k6 drops them ('assert 29 == 30' under two
    # busy loops when this read iterations alone)
    dropped = doc["metrics"].get("dropped_iterations", {}).get("count", 0)
    assert doc["metrics"]["iterations"]["count"] + dropped == 30, doc["metrics"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["scenarios"]["iot_upload"]["executor"] == "constant-arrival-rate"
    assert res.stderr == ""  # --quiet: no progress, no banner
