"""Password hashes, the user store, account seeding and signed session tokens."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest

from reference_server.accounts import UserStore, hash_password, seed_accounts, verify_password
from reference_server.sessions import InvalidSession, SessionSigner, load_or_create_key
from simulator.errors import ConfigError
from simulator.secrets import Secret

FAST_N = 2**10


def test_hash_is_salted_and_verifies() -> None:
    a = hash_password("hunter2", scrypt_n=FAST_N)
    b = hash_password(Secret("hunter2"), scrypt_n=FAST_N)
    assert a != b and a.startswith(f"scrypt:{FAST_N}:8:1$")
    assert verify_password(a, "hunter2") and verify_password(b, Secret("hunter2"))
    assert not verify_password(a, "hunter3")
    assert not verify_password("garbage", "hunter2")
    assert not verify_password("md5$x$y", "hunter2")


def test_hashes_interoperate_with_werkzeug() -> None:
    security = pytest.importorskip("werkzeug.security")
    ours = hash_password("pw", scrypt_n=FAST_N)
    assert security.check_password_hash(ours, "pw")
    theirs = security.generate_password_hash("pw", method="pbkdf2:sha256:1000")
    assert verify_password(theirs, "pw") and not verify_password(theirs, "px")


def test_seed_accounts_csv_matches_store(tmp_path: Path) -> None:
    out = tmp_path / "creds" / "accounts.csv"
    seed_accounts(tmp_path / "data", 5, out, prefix="lt", seed=42, scrypt_n=FAST_N)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["username", "password"]
    creds = rows[1:]
    assert [u for u, _ in creds] == [f"lt{i:04d}" for i in range(1, 6)]
    assert len({p for _, p in creds}) == 5 and all(len(p) == 16 for _, p in creds)
    store = UserStore(tmp_path / "data" / "users.sqlite")
    try:
        assert store.user_count() == 5
        assert all(store.authenticate(u, p) for u, p in creds)
        assert not store.authenticate(creds[0][0], creds[1][1])
        assert not store.authenticate("nobody", "x")
        assert store.login_counts() == {u: 1 for u, _ in creds}
    finally:
        store.close()
    # Same seed: same credentials; reseeding replaces passwords instead of failing.
    again = tmp_path / "again.csv"
    seed_accounts(tmp_path / "data", 5, again, prefix="lt", seed=42, scrypt_n=FAST_N)
    assert again.read_text() == out.read_text()


def test_seed_accounts_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="count"):
        seed_accounts(tmp_path, 0, tmp_path / "a.csv")
    with pytest.raises(ConfigError, match="prefix"):
        seed_accounts(tmp_path, 1, tmp_path / "a.csv", prefix="bad prefix")


def test_session_token_round_trip_forgery_and_expiry() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=10.0)
    token, expires = signer.issue("alice", now=1000.0)
    assert expires == 1010.0
    assert signer.verify(token, now=1005.0) == ("alice", 1010.0)
    with pytest.raises(InvalidSession, match="expired"):
        signer.verify(token, now=1010.0)
    payload, _, mac = token.partition(".")
    with pytest.raises(InvalidSession, match="signature"):
        signer.verify(payload + "." + mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB"), now=1001)
    other, _ = SessionSigner(b"x" * 32, ttl_s=10.0).issue("alice", now=1000.0)
    with pytest.raises(InvalidSession, match="signature"):
        signer.verify(other, now=1001.0)
    for bad in (None, "", "nodot", "é.é"):
        with pytest.raises(InvalidSession):
            signer.verify(bad, now=1001.0)


def test_key_generated_once_with_0600(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert len(key) >= 32
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path) == key
    given = tmp_path / "given.key"
    given.write_text("0123456789abcdef0123\n")
    assert load_or_create_key(tmp_path, given) == b"0123456789abcdef0123"
    given.write_text("short")
    with pytest.raises(ConfigError, match="shorter"):
        load_or_create_key(tmp_path, given)
