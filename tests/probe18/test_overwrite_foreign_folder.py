"""``--out DIR --overwrite`` replaces a run folder, never a folder that merely holds one of a
run's file names. Found by hand: a project folder with a ``config.json`` (and ``src/main.py``)
was removed whole by ``scfleet run x.toml --out proj --overwrite``, before the target was even
tried (here it refused: the run failed and the project was gone). README: "a folder holding
anything else ... is refused before anything is contacted".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from answering import answering
from small_run import TEN_SMALL_UPLOADS

from scfleet import api, cli

SCENARIO = TEN_SMALL_UPLOADS


def test_a_folder_with_a_config_json_and_more_is_not_replaced(
    tmp_path: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "up.toml").write_text(SCENARIO)
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.json").write_text('{"app": 1}')
    (proj / "src" / "main.py").write_text("precious")
    code = cli.main(
        ["run", str(tmp_path / "up.toml"), "--out", str(proj), "--overwrite", "--quiet"]
        + ["--target", f"http://127.0.0.1:{free_port}"]
    )
    err = capsys.readouterr().err
    assert code == 104, err
    assert err.startswith(f"scfleet: --out: {proj} holds 'src'") and len(err.splitlines()) == 1
    assert (proj / "src" / "main.py").read_text() == "precious"
    assert (proj / "config.json").read_text() == '{"app": 1}'


@pytest.mark.slow
def test_a_whole_run_folder_is_still_replaced(tmp_path: Path) -> None:
    (tmp_path / "up.toml").write_text(SCENARIO)
    cfg = api.load(tmp_path / "up.toml")
    with answering(200, 0.0) as url:
        first = api.run(cfg, target=url, out=tmp_path / "run", workers=1)
        (tmp_path / "run" / "report.html.part").write_text("a report cut short")
        shutil.rmtree(tmp_path / "run" / "server", ignore_errors=True)
        again = api.run(cfg, target=url, out=tmp_path / "run", workers=1, overwrite=True)
    assert first.exit_code == 0 and again.exit_code == 0
    assert not (tmp_path / "run" / "report.html.part").exists()
