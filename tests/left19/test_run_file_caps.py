"""``scfleet report``/``compare`` read each JSON file of a run folder with a size cap, as
summary.json's (probe18b): a timeline.json, stages.json or config.json linked to /dev/zero or
sparse past its cap is one line naming the file, exit 104, read no further than the cap.

Found by the last session's review of summary.json's cap: the other three files were read
whole (``path.read_text()``), so a link to /dev/zero was read until memory ran out and a big
sparse file was read in full before its JSON was found wrong.
"""

from __future__ import annotations

import os
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest
from answering import answering
from small_run import TEN_SMALL_UPLOADS

from scfleet import api, cli
from simulator.report import model

CAPS = {
    "timeline.json": "MAX_TIMELINE_BYTES",
    "stages.json": "MAX_SUMMARY_BYTES",
    "config.json": "MAX_SUMMARY_BYTES",
}


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("whole")
    (d / "up.toml").write_text(TEN_SMALL_UPLOADS)
    with answering(200, 0.0) as url:
        api.run(api.load(d / "up.toml"), target=url, out=d / "run", workers=1)
    assert {"timeline.json", "stages.json", "config.json"} <= {
        p.name for p in (d / "run").iterdir()
    }
    return d / "run"


def _args(command: str, whole: Path, bad: Path) -> list[str]:
    return ["report", str(bad)] if command == "report" else ["compare", str(whole), str(bad)]


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize("name", sorted(CAPS))
def test_a_file_linked_to_dev_zero_is_one_line(
    whole: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    command: str,
) -> None:
    for cap in set(CAPS.values()):
        monkeypatch.setattr(model, cap, 1 << 20)  # the test reads 1 MiB of /dev/zero
    bad = tmp_path / "bad"
    shutil.copytree(whole, bad)
    (bad / name).unlink()
    os.symlink("/dev/zero", bad / name)
    capsys.readouterr()
    assert cli.main(_args(command, whole, bad)) == 104
    err = capsys.readouterr().err
    assert err == f"scfleet: {bad / name}: larger than 1 MiB: not a file scfleet writes\n"


@pytest.mark.parametrize("name", sorted(CAPS))
def test_a_sparse_file_past_its_cap_is_refused_unread(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """At the real caps: a regular file one byte past its cap is refused by its size, before
    a byte of it is read (traced allocations stay far below the cap)."""
    cap = getattr(model, CAPS[name])
    bad = tmp_path / "bad"
    shutil.copytree(whole, bad)
    with open(bad / name, "wb") as fh:
        fh.truncate(cap + 1)  # sparse: no disk used
    capsys.readouterr()
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        code = cli.main(["report", str(bad)])
        took = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert (code, err) == (
        104,
        f"scfleet: {bad / name}: larger than {cap >> 20} MiB: not a file scfleet writes\n",
    )
    assert peak < 16 << 20, peak
    assert took < 10, took


def test_the_caps_are_generous() -> None:
    """summary.json, stages.json and config.json hold what the config sizes (scenarios, stages,
    thresholds); timeline.json grows with the run, ~0.35 KB a scenario a second: a week-long
    run (the longest a config allows) of one scenario is ~330 MB."""
    assert model.MAX_SUMMARY_BYTES == 64 << 20
    assert model.MAX_TIMELINE_BYTES == 1 << 30
