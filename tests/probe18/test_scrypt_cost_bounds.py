"""``scfleet accounts seed --scrypt-n N``: every N the flag takes seeds accounts that log in,
and an N no hash could be made with is a usage error (exit 2), never a traceback.

Found by hand: ``--scrypt-n 2`` (the flag's own lower bound) up to 64 ended in
``ValueError: [digital envelope routines] memory limit exceeded`` with a traceback, exit 1:
the hash's ``maxmem`` was 132·N·r·p bytes, and OpenSSL needs 128·r·(N + p + 2), more than that
below N = 96. ``--scrypt-n 1099511627776`` (2**40) ended in ``ValueError: maxmem must be
positive and smaller than 2147483647``: OpenSSL takes at most 2 GiB, N = 2**20 with r = 8.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_server.accounts import hash_password, verify_password
from scfleet import cli


@pytest.mark.parametrize("n", [2, 4, 16, 64, 128])
def test_a_small_cost_hashes_and_verifies(n: int) -> None:
    stored = hash_password("hunter2", scrypt_n=n)
    assert verify_password(stored, "hunter2")
    assert not verify_password(stored, "hunter3")


def test_the_flags_lowest_cost_seeds_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "creds.csv"
    args = ["accounts", "seed", "--data-dir", str(tmp_path / "data"), "--count", "2"]
    assert cli.main([*args, "--csv", str(csv), "--scrypt-n", "2"]) == 0
    assert len(csv.read_text().splitlines()) == 3  # header and two accounts
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("n", [2**21, 2**40])
def test_a_cost_past_what_openssl_takes_is_a_usage_error(
    n: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["accounts", "seed", "--data-dir", str(tmp_path / "data"), "--count", "2"]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, "--csv", str(tmp_path / "c.csv"), "--scrypt-n", str(n)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--scrypt-n" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c.csv").exists()
