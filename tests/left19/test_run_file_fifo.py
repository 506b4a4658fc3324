"""A named pipe (FIFO) in place of a run-folder file is one line naming it, exit 104, at once,
for ``scfleet report`` and ``compare``: summary.json, timeline.json, stages.json, config.json,
devices.csv, and a killed run's run.ndjson.

Found by the last session's review of the run-folder caps: each file was opened with a plain
open(), which for a FIFO no process writes waits for a writer, for ever (report or compare
hung). ``run`` already opens a ``--summary-export`` FIFO without waiting (probe18).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from answering import answering
from small_run import TEN_SMALL_UPLOADS

from scfleet import api, cli

NAMES = ["summary.json", "timeline.json", "stages.json", "config.json", "devices.csv"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("whole")
    (d / "up.toml").write_text(TEN_SMALL_UPLOADS)
    with answering(200, 0.0) as url:
        api.run(api.load(d / "up.toml"), target=url, out=d / "run", workers=1)
    assert {*NAMES, "run.ndjson"} <= {p.name for p in (d / "run").iterdir()}
    return d / "run"


def _main_within(args: list[str], fifo: Path, seconds: float) -> tuple[int | None, float]:
    """cli.main's exit code and time, or None when it still waits after ``seconds``: then the
    FIFO gets a writer that closes at once (the reader sees its end), so the thread ends."""
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(cli.main(args)), daemon=True)
    t0 = time.perf_counter()
    thread.start()
    thread.join(seconds)
    took = time.perf_counter() - t0
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        return None, took
    return code[0], took


CASES = [(n, c) for n in NAMES for c in ("report", "compare")] + [("run.ndjson", "report")]


@pytest.mark.parametrize(("name", "command"), CASES)
def test_a_fifo_in_the_run_folder_is_one_line_at_once(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, command: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(whole, bad)
    if name == "run.ndjson":  # a killed run: report rebuilds it from its stream
        (bad / "summary.json").unlink()
    (bad / name).unlink()
    os.mkfifo(bad / name)
    args = ["report", str(bad)] if command == "report" else ["compare", str(whole), str(bad)]
    capsys.readouterr()
    code, took = _main_within(args, bad / name, 5.0)
    err = capsys.readouterr().err
    assert code is not None, f"still waiting at open() after {took:.1f} s"
    assert (code, err) == (
        104,
        f"scfleet: {bad / name}: a named pipe (FIFO): not a file scfleet writes\n",
    )
    assert took < 5.0, took
