"""A ``--set`` value or a ``${VAR}`` read as TOML is one value: ``10\\nx = 1`` (a value with
a line of its own after it) was read as ``v = 10`` plus a key that went nowhere, so
``--set 'scenarios.a.rate=10<newline>[run]<newline>workers=99'`` ran at rate 10 and the
rest was dropped without a word. Now the text is a string, refused where a number goes."""

from __future__ import annotations

import pathlib

import pytest

from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG

REFUSED = "http://127.0.0.1:9"  # nothing listens: an accepted case exits 103
BASE = """
[scenarios.a]
executor = "constant-arrival-rate"
rate = RATE
duration = "2s"
pre_allocated_devices = 2
[scenarios.a.device]
kind = "iot_upload"
chunk_bytes = 64
"""
TAILS = ["10\nx = 1", "10\n[run]\nworkers = 99", "10\nv2 = 'a'"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["set", "env"])
@pytest.mark.parametrize("tail", TAILS)
def test_a_value_with_more_toml_after_it_is_not_a_number(
    how: str, tail: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(BASE.replace("RATE", '"${R}"' if how == "env" else "10"))
    out = tmp_path / "run"
    extra = ["-e", f"R={tail}"] if how == "env" else ["--set", f"scenarios.a.rate={tail}"]
    code = main(["run", str(cfg), "--target", REFUSED, "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID_CONFIG, f"exit {code}: {err}"
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and "scenarios.a.rate" in lines[0], err


def test_one_value_is_still_read_as_toml(tmp_path: pathlib.Path) -> None:
    from simulator.config.reader import toml_value

    assert toml_value("10 # a comment") == 10
    assert toml_value("[1, 2]") == [1, 2]
    assert toml_value("{a = 1}") == {"a": 1}
    assert toml_value("lab") == "lab"
