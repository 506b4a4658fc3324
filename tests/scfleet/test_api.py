"""The library API (``scfleet.api``): load a scenario with overrides, time scale and ``${VAR}``,
run it against the embedded server, a URL or any TargetProvider, get the result and its folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scfleet import api
from scfleet_core.errors import EXIT_OK, EXIT_THRESHOLDS_FAILED, ConfigError, TargetError
from simulator.config import RunConfig
from simulator.run.devices import Account
from simulator.session import Target

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 10
duration = "${LENGTH}"
pre_allocated_devices = 8
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 3200
[thresholds]
http_req_failed = ["rate<0.01"]
http_reqs = ["count>0"]
"""


def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "up.toml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.slow
def test_load_then_run_against_the_embedded_server(tmp_path: Path) -> None:
    cfg = api.load(
        scenario(tmp_path),
        overrides=["scenarios.up.rate=20"],
        time_scale=0.5,
        env={"LENGTH": "4s"},
    )
    assert cfg.scenarios[0].executor.duration == 2.0  # 4 s scaled by 0.5; rate not scaled
    out = tmp_path / "run"
    outcome = api.run(cfg, out=out)
    assert outcome.exit_code == EXIT_OK and outcome.run_dir == out
    summary = json.loads(outcome.files["summary.json"].read_text())
    # 20/s for 2 s: every iteration answered, or (a starved machine, every device busy)
    # counted as dropped, as k6 does; none lost.
    sent = summary["metrics"]["http_reqs"]["count"]
    assert sent + summary["metrics"].get("dropped_iterations", {}).get("count", 0) == 40
    assert sent >= 20
    assert summary["metrics"]["http_req_failed"]["passes"] == 0
    assert outcome.result.thresholds_ok
    assert (out / "server" / "ledger.sqlite").exists()  # the embedded server's data
    folder = outcome.folder  # the model the files were written from, not read back
    assert folder is not None and folder.summary == summary
    assert folder.rows and folder.rows[0].label == "20 iters/s"  # the stage table
    assert folder.config["config"]["scenarios"]["up"]["rate"] == 20  # the config as run
    assert folder.config["target"].startswith("http://127.0.0.1:")


class Recording:
    """A TargetProvider for a server the test started: records the calls the run makes."""

    def __init__(self, url: str, fail: bool = False) -> None:
        self.url = url
        self.fail = fail
        self.calls: list[str] = []

    def prepare(self, cfg: RunConfig) -> dict[str, list[Account]]:
        self.calls.append("prepare")
        return {}

    def start(self) -> Target:
        self.calls.append("start")
        if self.fail:
            raise TargetError(f"cannot reach {self.url}: test")
        return Target(self.url)

    def stop(self) -> None:
        self.calls.append("stop")


@pytest.mark.slow
def test_any_target_provider_plugs_in(tmp_path: Path, reference_server: Any) -> None:
    server = reference_server(tmp_path / "srv")
    cfg = api.load(scenario(tmp_path), env={"LENGTH": "1s"})
    provider = Recording(server.url)
    outcome = api.run(cfg, target=provider, out=tmp_path / "run")
    assert provider.calls == ["prepare", "start", "stop"]
    assert outcome.result.target == server.url
    assert outcome.result.registry.to_dict()["series"]  # requests were recorded
    assert json.loads(outcome.files["config.json"].read_text())["target"] == server.url


def test_a_target_that_fails_to_start_is_stopped_and_leaves_no_folder(tmp_path: Path) -> None:
    cfg = api.load(scenario(tmp_path), env={"LENGTH": "1s"})
    provider = Recording("http://127.0.0.1:9", fail=True)
    with pytest.raises(TargetError, match="127.0.0.1:9"):
        api.run(cfg, target=provider, out=tmp_path / "run")
    assert provider.calls == ["prepare", "start", "stop"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_url_target_and_a_failing_threshold(tmp_path: Path, reference_server: Any) -> None:
    server = reference_server(tmp_path / "srv")
    cfg = api.load(
        scenario(tmp_path),
        overrides=['thresholds.http_reqs=["count>1000000"]'],
        env={"LENGTH": "1s"},
    )
    outcome = api.run(cfg, target=server.url, out=tmp_path / "run")
    assert not outcome.result.thresholds_ok
    assert outcome.exit_code == EXIT_THRESHOLDS_FAILED


def test_bad_input_is_a_one_line_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--target"):
        api.load(scenario(tmp_path), target="ftp://x", env={"LENGTH": "1s"})
    with pytest.raises(ConfigError, match=r"up\.toml"):
        api.load(scenario(tmp_path), overrides=["scenarios.up.rate=-1"], env={"LENGTH": "1s"})
