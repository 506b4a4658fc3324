"""``scfleet report`` and ``scfleet compare`` on a run folder damaged in ways probe16b's
misshapen files did not try: a folder where a file belongs, JSON nested past Python's
recursion limit, a devices.csv field past csv's 128 KB limit, and a run.ndjson (a killed
run's stream, which ``report`` rebuilds from) whose lines are JSON but not shaped as scfleet
streams them. Each is one line naming the folder or the file, exit 104 — never a traceback.

Found by hand: ``compare`` with ``summary.json``/``stages.json``/``devices.csv`` a folder
(IsADirectoryError), both commands on ``'[' * 100000`` in summary.json or timeline.json
(RecursionError), a 200 KB devices.csv field (``_csv.Error``), and ``report`` on a stream with
``{"type":"tick","registry":[]}`` (AttributeError), a tick without ``wall`` (KeyError) or with
``"wall": "abc"`` (ValueError): each a traceback, exit 1.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from answering import answering
from small_run import TEN_SMALL_UPLOADS

from scfleet import api, cli

SCENARIO = TEN_SMALL_UPLOADS

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("whole")
    (d / "up.toml").write_text(SCENARIO)
    with answering(200, 0.0) as url:
        api.run(api.load(d / "up.toml"), target=url, out=d / "run", workers=1)
    return d / "run"


def _folder_instead(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return damage


def _write(name: str, text: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_text(text)

    return damage


DAMAGE = {
    "summary.json a folder": _folder_instead("summary.json"),
    "stages.json a folder": _folder_instead("stages.json"),
    "devices.csv a folder": _folder_instead("devices.csv"),
    "summary.json nested deep": _write("summary.json", DEEP),
    "timeline.json nested deep": _write("timeline.json", DEEP),
    "devices.csv huge field": _write("devices.csv", "a" * 200_000 + "\n1,2\n"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_damaged_file_is_one_line_naming_it(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, damage: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(whole, bad)
    DAMAGE[damage](bad)
    capsys.readouterr()
    args = ["report", str(bad)] if command == "report" else ["compare", str(whole), str(bad)]
    assert cli.main(args) == 104
    err = capsys.readouterr().err
    assert err.startswith(f"scfleet: {bad}") and len(err.splitlines()) == 1, err
    assert "cannot write" not in err  # a read that failed, not a write


STREAM_LINES = {
    "registry a list": '{"type": "tick", "registry": []}',
    "tick without wall": '{"type": "tick", "point": {"t": 1}}',
    "wall not a number": '{"type": "tick", "wall": "abc", "point": '
    '{"t": "x", "span": 1, "scenarios": {}}}',
    "series without metric": '{"type": "tick", "registry": {"series": [{"name": "x"}]}}',
    "nested deep": DEEP,
}


@pytest.mark.parametrize("line", list(STREAM_LINES))
def test_a_misshapen_stream_line_is_one_line_naming_the_stream(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    killed = tmp_path / "killed"
    shutil.copytree(whole, killed)
    (killed / "summary.json").unlink()  # as a kill -9 leaves it: the stream only
    lines = (killed / "run.ndjson").read_text().splitlines()
    json.loads(lines[0])  # the start line stays whole
    lines.insert(1, STREAM_LINES[line])
    (killed / "run.ndjson").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code = cli.main(["report", str(killed)])
    err = capsys.readouterr().err
    if line == "nested deep":  # not JSON scfleet can read: a damaged line, as any other
        assert code == 0, err
        summary = json.loads((killed / "summary.json").read_text())
        assert summary["scfleet"]["state"]["interrupted"] is True
        assert any("line 2" in n for n in summary["scfleet"]["notes"])
        return
    assert code == 104
    assert err.startswith(f"scfleet: {killed / 'run.ndjson'}") and len(err.splitlines()) == 1, err
