"""The pytest plugin's ``FleetRun.summary`` reads summary.json as ``scfleet report`` does: a
summary of a format this scfleet does not know is one line naming the file (a ConfigError),
not a future format's figures read as today's; and it is capped as report's read is.

Found by the last session's review of the format check (probe18b): ``report``/``compare``
refused ``"scfleet": {"format": 99}``, the plugin's ``json.loads(read_text())`` took it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import pytest

from scfleet.api import RunOutcome
from scfleet.pytest_plugin import FleetRun
from scfleet_core.errors import ConfigError
from simulator.report import model


def _run(folder: Path, summary: object) -> FleetRun:
    folder.mkdir(exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    # .summary reads the folder alone, never the in-memory result
    return FleetRun(RunOutcome(result=cast(Any, None), run_dir=folder))


TODAYS = {"metrics": {"http_reqs": {"count": 3, "rate": 1.5}}, "scfleet": {"format": 2}}


@pytest.mark.parametrize("fmt", [99, 0, "2", None])
def test_a_summary_of_a_format_it_does_not_know_is_one_line(tmp_path: Path, fmt: object) -> None:
    run = _run(tmp_path / "run", {**TODAYS, "scfleet": {"format": fmt}})
    with pytest.raises(ConfigError) as caught:
        run.summary  # noqa: B018 - the property reads the file
    msg = str(caught.value)
    assert msg.startswith(f"{tmp_path / 'run' / 'summary.json'}: ") and "\n" not in msg, msg
    assert f"scfleet.format {fmt!r}" in msg and "formats 1 to 2" in msg, msg


def test_todays_summary_reads_as_written(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", TODAYS)
    assert run.summary == TODAYS
    assert run.metric("http_reqs") == {"count": 3, "rate": 1.5}


def test_a_summary_linked_to_dev_zero_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model, "MAX_SUMMARY_BYTES", 1 << 20)  # the test reads 1 MiB, not 64
    run = _run(tmp_path / "run", TODAYS)
    (tmp_path / "run" / "summary.json").unlink()
    os.symlink("/dev/zero", tmp_path / "run" / "summary.json")
    with pytest.raises(ConfigError) as caught:
        run.summary  # noqa: B018
    path = tmp_path / "run" / "summary.json"
    assert str(caught.value) == f"{path}: larger than 1 MiB: not a file scfleet writes"
