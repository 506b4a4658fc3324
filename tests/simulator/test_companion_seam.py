"""The engine learns what a companion needs through the ``Companion`` seam, never from its
config section: the open files it holds count before anything starts (issue 9)."""

from __future__ import annotations

import pathlib
import resource
import subprocess
import sys

from simulator.run.limits import MARGIN

ROOT = pathlib.Path(__file__).resolve().parents[2]

CODE = """
import sys
from scfleet import api
from simulator.run.limits import OpenFileLimit
from simulator.session import run_session


class Target:  # a TargetProvider that records what was asked of it
    asked = []

    def prepare(self, cfg):
        self.asked.append("prepare")
        return {}

    def start(self):
        self.asked.append("start")
        raise AssertionError("the target was contacted")

    def stop(self):
        pass


class Hungry:  # a companion holding 400 descriptors during the run
    async def prepare(self, env): ...
    async def run(self, env, start): ...
    async def close(self): ...
    def device_rows(self): return []
    def open_files(self): return 400


cfg = api.load("configs/smoke.toml")
target = Target()
try:
    run_session(cfg, target, sys.argv[1], {}, companions=(lambda cfg: Hungry(),))
except OpenFileLimit as exc:
    print(exc)
print("asked:", target.asked)
"""


def test_a_companions_open_files_count_before_the_target_is_contacted(
    tmp_path: pathlib.Path,
) -> None:
    res = subprocess.run(
        [sys.executable, "-c", CODE, str(tmp_path / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512)),
    )
    assert res.returncode == 0, res.stderr
    # smoke.toml's 50 devices + the margin fit under 512; with the companion's 400 they do not
    assert f"needs {50 + MARGIN + 400} open files" in res.stdout, res.stdout
    assert "asked: []" in res.stdout  # refused before prepare and start
