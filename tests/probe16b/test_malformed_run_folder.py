"""``scfleet report`` and ``scfleet compare`` on a run folder whose files parse as JSON but are
not shaped as scfleet writes them (hand-edited, another tool's, cut and re-saved) give one line
naming the folder, exit 104 ("a run folder that cannot be read") — never a traceback.

Found by replacing one file of a whole run's folder at a time: ``timeline.json`` ``[1]``
(AttributeError), ``[{}]`` (KeyError: 'span'), ``stages.json`` ``[]``, ``config.json`` ``[]``
(compare only), ``summary.json`` with ``"metrics": []`` or no ``thresholds``, and a ``p(95)``
of ``null``: each a traceback, exit 1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from answering import answering
from small_run import TEN_SMALL_UPLOADS

from scfleet import api, cli

SCENARIO = TEN_SMALL_UPLOADS

NULL_P95 = None  # marks the case that edits summary.json's p(95) to null


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("whole")
    (d / "up.toml").write_text(SCENARIO)
    with answering(200, 0.0) as url:
        api.run(api.load(d / "up.toml"), target=url, out=d / "run", workers=1)
    return d / "run"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("timeline.json", "[1]"),
        ("timeline.json", "[{}]"),
        ("stages.json", "[]"),
        ("config.json", "[]"),
        ("summary.json", '{"metrics": [], "state": {}}'),
        ("summary.json", '{"scfleet": {}, "metrics": {}}'),
        ("summary.json", NULL_P95),
    ],
)
@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_misshapen_file_is_one_line_naming_the_folder(
    whole: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    name: str,
    text: str | None,
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(whole, bad)
    if text is None:
        doc = (bad / name).read_text().replace('"p(95)": ', '"p(95)": null, "x": ', 1)
        (bad / name).write_text(doc)
    else:
        (bad / name).write_text(text)
    capsys.readouterr()
    args = ["report", str(bad)] if command == "report" else ["compare", str(whole), str(bad)]
    assert cli.main(args) == 104
    err = capsys.readouterr().err
    assert err.startswith(f"scfleet: {bad}") and len(err.splitlines()) == 1, err
