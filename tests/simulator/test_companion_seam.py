"""The engine learns what a companion needs through the ``Companion`` seam, never from its
config section: the open files it holds count before anything starts (issue 9)."""

from __future__ import annotations

import pathlib
import resource
from collections.abc import Mapping

import pytest

from scfleet import api
from simulator.run.device_row import DeviceRow
from simulator.run.devices import Account
from simulator.run.limits import MARGIN, OpenFileLimit
from simulator.run.runner import Environment
from simulator.session import Target, run_session

ROOT = pathlib.Path(__file__).resolve().parents[2]


class AskedTarget:
    """A TargetProvider that records what was asked of it."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def prepare(self, cfg: object) -> Mapping[str, list[Account]]:
        self.asked.append("prepare")
        return {}

    def start(self) -> Target:
        self.asked.append("start")
        raise AssertionError("the target was contacted")

    def stop(self) -> None:
        pass


class Hungry:
    """A companion holding 400 descriptors during the run."""

    async def prepare(self, env: Environment) -> None: ...

    async def run(self, env: Environment, start: float) -> None: ...

    async def close(self) -> None: ...

    def device_rows(self) -> list[DeviceRow]:
        return []

    def open_files(self) -> int:
        return 400


def test_a_companions_open_files_count_before_the_target_is_contacted(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a soft limit of 256 under a hard one of 512, as the process would see it (not set for real:
    # a lowered hard limit could not be raised again in this test process)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 512))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: None)
    cfg = api.load(ROOT / "configs" / "smoke.toml")
    target = AskedTarget()
    with pytest.raises(OpenFileLimit) as err:
        run_session(cfg, target, tmp_path / "run", {}, companions=(lambda cfg: Hungry(),))
    # smoke.toml's 50 devices + the margin fit under 512; with the companion's 400 they do not
    assert f"needs {50 + MARGIN + 400} open files" in str(err.value)
    assert target.asked == []  # refused before prepare and start
