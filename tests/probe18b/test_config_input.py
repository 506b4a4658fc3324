"""A config that starts with a UTF-8 BOM, and an infinite number in a quick flag: each told
what is wrong.

Found by hand (probe18): a BOM told "invalid TOML: Invalid statement (at line 1, column 1)";
``--stage 1s:1e400`` (inf) "target must be >= 0", ``--rate inf`` "expected a positive number".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from small_run import TEN_SMALL_UPLOADS

from scfleet import cli

SCENARIO = TEN_SMALL_UPLOADS


def test_a_config_with_a_bom_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bom.toml"
    cfg.write_bytes(b"\xef\xbb\xbf" + SCENARIO.encode())
    assert cli.main(["inspect", str(cfg)]) == 104
    err = capsys.readouterr().err
    assert err.startswith(f"scfleet: {cfg}: ") and len(err.splitlines()) == 1
    assert "starts with a UTF-8 byte-order mark" in err, err


@pytest.mark.parametrize(
    ("flag", "value", "want"),
    [
        ("--stage", "1s:1e400", "target must be a finite number, got '1s:1e400'"),
        ("--stage", "1s:inf", "target must be a finite number"),
        ("--stage", "1s:nan", "target must be a finite number"),
        ("--stage", "1s:-inf", "target must be a finite number"),
        ("--rate", "inf", "expected a finite number, got 'inf'"),
        ("--rate", "nan", "expected a finite number"),
        ("--rate", "1e400", "expected a finite number"),
    ],
)
def test_an_infinite_quick_flag_says_finite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, want: str
) -> None:
    cfg = tmp_path / "up.toml"
    cfg.write_text(SCENARIO)
    with pytest.raises(SystemExit) as stop:
        cli.main(["inspect", str(cfg), f"{flag}={value}"])
    assert stop.value.code == 2
    assert want in capsys.readouterr().err


def test_a_negative_stage_target_still_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "up.toml"
    cfg.write_text(SCENARIO)
    with pytest.raises(SystemExit):
        cli.main(["inspect", str(cfg), "--stage=1s:-1"])
    assert "target must be >= 0, got '1s:-1'" in capsys.readouterr().err
