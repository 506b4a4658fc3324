"""``scfleet serve`` / ``scfleet accounts seed`` wiring; passwords stay out of the output."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from reference_server.accounts import UserStore
from scfleet import cli


def test_accounts_seed_writes_usable_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "accounts.csv"
    code = cli.main(
        ["accounts", "seed", "--data-dir", str(tmp_path / "d"), "--count", "3"]
        + ["--csv", str(out), "--prefix", "vu", "--scrypt-n", "1024"]
    )
    assert code == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["username"] for r in rows] == ["vu0001", "vu0002", "vu0003"]
    printed = capsys.readouterr()
    assert all(r["password"] not in printed.out + printed.err for r in rows)
    store = UserStore(tmp_path / "d" / "users.sqlite")
    try:
        assert all(store.authenticate(r["username"], r["password"]) for r in rows)
    finally:
        store.close()


def test_accounts_seed_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["accounts", "seed", "--data-dir", str(tmp_path), "--count", "0", "--csv", "x"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow  # a fresh interpreter (0.4-0.9 s): the fast tier stays under 60 s
def test_serve_is_registered_without_heavy_imports() -> None:
    code = (
        "import sys; from scfleet.cli import build_parser; p = build_parser();"
        "a = p.parse_args(['serve', '--data-dir', 'x', '--analysis-workers', '3']);"
        "assert a.analysis_workers == 3 and a.port == 0 and a.func.__name__ == '_serve';"
        "heavy = [m for m in ('aiohttp', 'numpy', 'soundfile') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
