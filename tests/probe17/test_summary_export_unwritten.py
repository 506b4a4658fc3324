"""``--summary-export FILE`` is written even when the run folder, and the temp folder it falls
back to, could not be: the user named that file, and it may well sit on a disk that has room.

Found by probe17: with both folders failing, the summary was printed and the export skipped
without a word; a CI job reading FILE found nothing and no line saying why."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from answering import answering
from small_run import SMALL_UPLOAD

from scfleet.cli import main
from simulator.report import output


@pytest.mark.timeout(120)
def test_the_export_is_written_from_memory_when_no_folder_could_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disk_full(result: Any, run_dir: Path, record: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "config.json"))

    monkeypatch.setattr(output, "write_run_model", disk_full)  # the run folder and the temp one
    (tmp_path / "up.toml").write_text(SMALL_UPLOAD)
    export = tmp_path / "export.json"
    with answering(200, 0.0) as url:
        code = main(
            ["run", str(tmp_path / "up.toml"), "--target", url, "--out", str(tmp_path / "r")]
            + ["--workers", "1", "--quiet", "--summary-export", str(export)]
        )
    err = capsys.readouterr().err
    assert code == 103, err
    assert "Traceback" not in err and "No space left on device" in err, err
    summary = json.loads(export.read_text())
    assert summary["metrics"]["http_reqs"]["count"] == 5
    assert "scfleet" in summary and "metrics" in summary
