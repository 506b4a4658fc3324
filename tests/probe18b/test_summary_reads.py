"""``scfleet report``/``compare`` on a summary.json of a format they do not know, or linked
to /dev/zero: one line naming the file, exit 104.

Found by hand (probe18): ``"scfleet": {"format": 99}`` read as today's format, silently (exit
0); a summary.json linked to /dev/zero read until memory ran out (no size limit).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from answering import answering
from small_run import TEN_SMALL_UPLOADS

from scfleet import api, cli
from simulator.report import model

SCENARIO = TEN_SMALL_UPLOADS


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("whole")
    (d / "up.toml").write_text(SCENARIO)
    with answering(200, 0.0) as url:
        api.run(api.load(d / "up.toml"), target=url, out=d / "run", workers=1)
    return d / "run"


@pytest.mark.parametrize("fmt", [99, 0, "2", None])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_summary_of_a_format_it_does_not_know_is_one_line(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, fmt: object
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(whole, bad)
    doc = json.loads((bad / "summary.json").read_text())
    doc["scfleet"]["format"] = fmt
    (bad / "summary.json").write_text(json.dumps(doc))
    capsys.readouterr()
    args = ["report", str(bad)] if command == "report" else ["compare", str(whole), str(bad)]
    assert cli.main(args) == 104
    err = capsys.readouterr().err
    assert err.startswith(f"scfleet: {bad / 'summary.json'}: ") and len(err.splitlines()) == 1
    assert f"scfleet.format {fmt!r}" in err and "formats 1 to 2" in err, err


def test_todays_and_an_old_summary_still_read(whole: Path, tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    shutil.copytree(whole, ok)
    doc = json.loads((ok / "summary.json").read_text())
    assert doc["scfleet"]["format"] == 2
    del doc["scfleet"]["format"]  # written before the key existed
    (ok / "summary.json").write_text(json.dumps(doc))
    assert cli.main(["report", str(ok)]) == 0


def test_a_summary_linked_to_dev_zero_is_one_line(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model, "MAX_SUMMARY_BYTES", 1 << 20)  # the test reads 1 MiB, not 64
    bad = tmp_path / "bad"
    shutil.copytree(whole, bad)
    (bad / "summary.json").unlink()
    os.symlink("/dev/zero", bad / "summary.json")
    capsys.readouterr()
    assert cli.main(["report", str(bad)]) == 104
    err = capsys.readouterr().err
    assert err == f"scfleet: {bad / 'summary.json'}: larger than 1 MiB: not a file scfleet writes\n"


def test_the_summary_cap_is_generous() -> None:
    assert model.MAX_SUMMARY_BYTES == 64 << 20
