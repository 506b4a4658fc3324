"""A run stopped at its very first moment (a Ctrl-C/SIGTERM that came as its loop was being
made: the run starts and stops at once) still gets its report files.

Found by probe17 with a burst of SIGTERMs 2.1 s into ``scfleet run``: "scfleet: report files
not written (ZeroDivisionError: float division by zero); retry with: scfleet report …" — and
the retry failed the same way. The run's only timeline point spans 0.000 s, and the stage
table divided the stage's requests by its seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from answering import answering
from small_run import SMALL_UPLOAD

from scfleet import api
from simulator import session


@pytest.mark.timeout(120)
def test_a_run_stopped_as_it_starts_writes_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install = session.RunSignals.install

    def signalled_at_once(self: session.RunSignals) -> None:
        install(self)
        self.count += 1  # counted before the loop is attached: it stops as it starts

    monkeypatch.setattr(session.RunSignals, "install", signalled_at_once)
    (tmp_path / "up.toml").write_text(SMALL_UPLOAD)
    with answering(200, 0.0) as url:
        outcome = api.run(api.load(tmp_path / "up.toml"), target=url, out=tmp_path / "r", workers=1)
    err = capsys.readouterr().err
    assert "not written" not in err, err
    assert outcome.exit_code == 105
    assert (tmp_path / "r" / "report.html").stat().st_size > 0
    assert "verdict:" in (tmp_path / "r" / "summary.txt").read_text()
