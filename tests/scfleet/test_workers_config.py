"""``[run] workers`` and ``--workers``: bad values are one-line errors naming the key or flag."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from scfleet import api
from scfleet_core.errors import ConfigError

BASE = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 5
duration = "1s"
pre_allocated_devices = 2
max_devices = 2
[scenarios.up.device]
kind = "iot_upload"
"""


def _load(tmp_path: pathlib.Path, extra: str) -> Any:
    path = tmp_path / "w.toml"
    path.write_text(BASE + extra)
    return api.load(path)


def test_workers_key_accepts_a_count_or_auto(tmp_path: pathlib.Path) -> None:
    assert _load(tmp_path, "").run.workers == "auto"  # one per core unless pinned
    assert _load(tmp_path, "[run]\nworkers = 1\n").run.workers == 1
    assert _load(tmp_path, "[run]\nworkers = 3\n").run.workers == 3
    assert _load(tmp_path, '[run]\nworkers = "auto"\n').run.workers == "auto"
    assert api.resolve_workers("auto") >= 1


@pytest.mark.parametrize("value", ["0", "257", '"many"', "true", "1.5"])
def test_bad_workers_key_names_it(tmp_path: pathlib.Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"run\.workers"):
        _load(tmp_path, f"[run]\nworkers = {value}\n")


def test_unknown_run_key_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"run\.threads"):
        _load(tmp_path, "[run]\nthreads = 2\n")


def test_workers_flag_is_a_usage_error_when_bad(capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (:func:`scfleet.cli.main`): a subprocess cost ~0.4 s of CPU in the fast tier."""
    from scfleet.cli import main

    smoke = pathlib.Path(__file__).resolve().parents[2] / "configs" / "smoke.toml"
    try:
        code = main(["run", str(smoke), "--workers", "0"])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    stderr = capsys.readouterr().err
    assert code == 2 and "--workers" in stderr and "Traceback" not in stderr


def test_warm_connections_key_accepts_a_count_or_auto(tmp_path: pathlib.Path) -> None:
    """Default 0: dial on demand, as k6 does (opening ahead changed a verdict, README)."""
    assert _load(tmp_path, "").run.warm_connections == 0
    assert _load(tmp_path, "[run]\nwarm_connections = 0\n").run.warm_connections == 0
    assert _load(tmp_path, "[run]\nwarm_connections = 50\n").run.warm_connections == 50
    auto = _load(tmp_path, '[run]\nwarm_connections = "auto"\n')
    assert auto.run.warm_connections == "auto"


@pytest.mark.parametrize("value", ["-1", "100001", '"all"', "true", "2.5", "[1]"])
def test_bad_warm_connections_is_one_line_naming_file_and_key(
    tmp_path: pathlib.Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI (in-process): a one-line error naming the file and the key, exit
    non-zero, no traceback."""
    from scfleet.cli import main

    path = tmp_path / "w.toml"
    path.write_text(BASE + f"[run]\nwarm_connections = {value}\n")
    with pytest.raises(ConfigError, match=r"run\.warm_connections"):
        api.load(path)
    code = main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err
    assert "\n" not in err and "w.toml" in err and "run.warm_connections" in err


@pytest.mark.parametrize("value", ["8", '"auto"'])
def test_warm_connections_with_the_aiohttp_transport_is_refused(
    tmp_path: pathlib.Path, value: str
) -> None:
    """Only the fast client opens connections ahead: with aiohttp the key was silently
    ignored (a run asking for 8 opened none and said nothing)."""
    extra = f'[target]\ntransport = "aiohttp"\n[run]\nwarm_connections = {value}\n'
    with pytest.raises(ConfigError, match=r"w\.toml: run\.warm_connections: .*aiohttp"):
        _load(tmp_path, extra)
    assert _load(tmp_path, '[target]\ntransport = "aiohttp"\n').run.warm_connections == 0
