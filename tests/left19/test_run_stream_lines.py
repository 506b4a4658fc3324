"""``scfleet report`` rebuilding a killed run reads its run.ndjson a line at a time, each line
at most MAX_STREAM_LINE bytes: a longer one, or a stream that never ends a line (a link to
/dev/zero), is one line naming the file and the line, exit 104, read no further.

Found by the last session's review of the run-folder caps: the stream was read whole
(``read_text()``), split into a list of lines, and every tick line kept as a dict until the
end, so a killed long run's stream (GBs) took several times its size in memory, and
/dev/zero was read until memory ran out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from answering import answering
from small_run import TEN_SMALL_UPLOADS

from scfleet import api, cli
from simulator.report import output

MiB = 1 << 20


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole run's folder with only its config and stream: a run killed as it was written."""
    d = tmp_path_factory.mktemp("killed")
    (d / "up.toml").write_text(TEN_SMALL_UPLOADS)
    with answering(200, 0.0) as url:
        api.run(api.load(d / "up.toml"), target=url, out=d / "run", workers=1)
    for p in (d / "run").iterdir():
        if p.name not in ("run.ndjson", "config.json"):
            p.unlink()
    return d / "run"


def _report(run: Path) -> tuple[int, int]:
    """cli.main(["report", run])'s exit code and its traced peak of memory."""
    tracemalloc.start()
    try:
        code = cli.main(["report", str(run)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return code, peak


def _figures(run: Path) -> dict[str, object]:
    doc = json.loads((run / "summary.json").read_text())
    return {k: doc[k] for k in ("metrics", "root_group", "state", "notes") if k in doc}


def test_a_long_stream_is_read_a_line_at_a_time(killed: Path, tmp_path: Path) -> None:
    """64 blank lines of 1 MiB after the last record (no record follows them: not damage) change
    no figure, and the rebuild holds about a line of them, not the file."""
    plain, padded = tmp_path / "plain", tmp_path / "padded"
    shutil.copytree(killed, plain)
    shutil.copytree(killed, padded)
    with open(padded / "run.ndjson", "a") as fh:
        for _ in range(64):
            fh.write(" " * MiB + "\n")
    assert cli.main(["report", str(plain)]) == 0
    code, peak = _report(padded)
    assert code == 0
    assert _figures(padded) == _figures(plain)
    assert _figures(plain)["metrics"], _figures(plain)
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB for a 64 MiB stream"


@pytest.mark.parametrize("where", ["last", "middle"])
def test_an_over_long_line_is_one_line_naming_it(
    killed: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """A 100 MB line (sparse: no disk used) past a 1 MiB cap: refused, read no further."""
    monkeypatch.setattr(output, "MAX_STREAM_LINE", MiB, raising=False)
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    lines = (run / "run.ndjson").read_bytes().splitlines(keepends=True)
    with open(run / "run.ndjson", "r+b") as fh:
        if where == "middle":  # after the start line, before the ticks
            fh.truncate(len(lines[0]))
            fh.seek(len(lines[0]) + 100 * 10**6)
            fh.write(b"\n" + b"".join(lines[1:]))
        else:  # the kill's torn last line, were it short
            fh.truncate(sum(map(len, lines)) + 100 * 10**6)
    number = 2 if where == "middle" else len(lines) + 1
    capsys.readouterr()
    code, peak = _report(run)
    assert (code, capsys.readouterr().err) == (
        104,
        f"scfleet: {run / 'run.ndjson'}: line {number} is longer than 1 MiB: "
        "not a line scfleet writes\n",
    )
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB"


@pytest.mark.slow
def test_a_stream_linked_to_dev_zero_under_a_memory_limit(killed: Path, tmp_path: Path) -> None:
    """At the real cap, in a process limited to 1 GiB of address space: one line, exit 104."""
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    (run / "run.ndjson").unlink()
    os.symlink("/dev/zero", run / "run.ndjson")
    script = "import sys; from scfleet import cli; sys.exit(cli.main(['report', sys.argv[1]]))"
    res = subprocess.run(
        ["bash", "-c", 'ulimit -v 1048576 && exec "$0" -c "$1" "$2"', sys.executable, script, run],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (res.returncode, res.stderr) == (
        104,
        f"scfleet: {run / 'run.ndjson'}: line 1 is longer than 64 MiB: not a line scfleet writes\n",
    )


def test_the_line_cap_is_generous() -> None:
    """As summary.json's: a tick line is one second's registry delta, ~0.25 MB for a histogram
    series whose every bucket moved in that second."""
    assert output.MAX_STREAM_LINE == 64 << 20
