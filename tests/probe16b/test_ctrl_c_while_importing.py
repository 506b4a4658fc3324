"""Ctrl-C while ``scfleet`` is still importing its commands (the first second or so of any
command; longer on a busy machine) ends as every other Ctrl-C does: ``scfleet: interrupted``,
exit 105 — not a ``KeyboardInterrupt`` traceback from deep inside an import, exit 130.

Found by SIGINT 1.5 s after ``scfleet run`` started on the busy 2-core machine: a traceback
through ``build_parser`` → ``add_k6_flags`` → ``simulator.config``'s import.
"""

from __future__ import annotations

import pytest

from scfleet import cli
from scfleet_core.errors import EXIT_INTERRUPTED


def test_ctrl_c_while_the_commands_are_imported_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def importing() -> None:
        raise KeyboardInterrupt  # where the signal lands: an import in build_parser

    monkeypatch.setattr(cli, "build_parser", importing)
    assert cli.main(["run", "x.toml"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "scfleet: interrupted\n"
