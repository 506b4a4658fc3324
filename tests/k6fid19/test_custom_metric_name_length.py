"""A custom metric's name is 2 to 129 characters, as k6 1.1 takes one (``compileNameRegex``,
``^[a-zA-Z_][a-zA-Z0-9_]{1,128}$``): a device declaring ``Counter("t")`` fails to load (exit
107, as k6's ``new Counter('t')`` throws at init), and a 129-character name is taken.

Found side by side with k6 1.1.0: a script with ``new Trend('t')`` exited 107 ("Invalid metric
name"), where the same metric on a Python device ran; k6 took names of 2, 128 and 129
characters and refused 1 and 130, scfleet took 1 to 128.
"""

from __future__ import annotations

import pathlib

import pytest
from k6_side import needs_k6

from scfleet import api
from scfleet_core.errors import ScfleetError

DEVICE = """
from simulator.userdevice import Counter, Device


class D(Device):
    c = Counter("NAME")

    async def iteration(self) -> None:
        self.c.add(1)
"""

RUN = """[scenarios.up]
executor = "per-vu-iterations"
vus = 1
iterations = 1
[scenarios.up.device]
kind = "python:dev.py:D"
"""


def _load(tmp: pathlib.Path, name: str) -> None:
    (tmp / "dev.py").write_text(DEVICE.replace("NAME", name))
    (tmp / "t.toml").write_text(RUN)
    api.load(tmp / "t.toml")


@pytest.mark.parametrize("name", ["t", "_", "a" * 130])
def test_names_k6_refuses_fail_to_load(name: str, tmp_path: pathlib.Path) -> None:
    with pytest.raises(ScfleetError) as err:
        _load(tmp_path, name)
    assert err.value.exit_code == 107


@pytest.mark.parametrize("name", ["tt", "_x", "a" * 128, "a" * 129])
def test_names_k6_takes_load(name: str, tmp_path: pathlib.Path) -> None:
    _load(tmp_path, name)


@pytest.mark.slow
@needs_k6
@pytest.mark.parametrize(("name", "code"), [("t", 107), ("a" * 129, 0), ("a" * 130, 107)])
def test_k6_takes_the_same_names(name: str, code: int, tmp_path: pathlib.Path) -> None:
    import os
    import subprocess

    from k6_side import K6

    (tmp_path / "s.js").write_text(
        "import { Counter } from 'k6/metrics';\n"
        f"const c = new Counter('{name}');\n"
        "export const options = { iterations: 1 };\n"
        "export default function () { c.add(1); }\n"
    )
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    res = subprocess.run(
        [K6 or "k6", "run", "--quiet", "--no-usage-report", "s.js"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == code
