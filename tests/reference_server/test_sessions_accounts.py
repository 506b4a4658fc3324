"""Password hashes, the user store, account seeding and signed session tokens."""

from __future__ import annotations

import csv
import json
import stat
import statistics
import time
from pathlib import Path

import pytest

from reference_server.accounts import UserStore, hash_password, seed_accounts, verify_password
from reference_server.sessions import InvalidSession, SessionSigner, _b64, load_or_create_key
from scfleet_core.errors import ConfigError
from scfleet_core.secrets import Secret

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
    session = signer.verify(token, now=1005.0)
    assert (session.username, session.expires) == ("alice", 1010.0) and session.sid
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


def _forge(signer: SessionSigner, exp: object, stamp: str = "") -> str:
    """A correctly signed token carrying an arbitrary expiry (what a leaked key, or a bug in
    issue(), would produce): the expiry check must not trust the signature alone."""
    body = json.dumps({"u": "alice", "exp": exp, "sid": "s1"}, separators=(",", ":"))
    payload = _b64(body.encode())
    return f"{payload}.{signer._mac(payload, stamp)}"


@pytest.mark.parametrize(
    "exp",
    [float("nan"), float("inf"), "9999999999", 9999999999999, 1e300, 1005000.5, True, None, -1],
    ids=["nan", "inf", "string", "far-future", "1e300", "float", "bool", "null", "negative"],
)
def test_signed_but_absurd_expiry_never_verifies(exp: object) -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=10.0)
    token = _forge(signer, exp)
    for now in (1001.0, time.time(), 4e9):
        with pytest.raises(InvalidSession):
            signer.verify(token, now=now)


def test_token_of_deleted_or_changed_user_stops_verifying(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    try:
        store.set_password("alice", "pw", scrypt_n=FAST_N)
        store.set_password("bob", "pw", scrypt_n=FAST_N)
        signer = SessionSigner(b"k" * 32, ttl_s=60.0)
        alice, _ = signer.issue("alice", store.session_stamp("alice") or "")
        bob, _ = signer.issue("bob", store.session_stamp("bob") or "")
        assert signer.verify(alice, stamp_of=store.session_stamp).username == "alice"
        assert store.delete_user("alice")
        with pytest.raises(InvalidSession):
            signer.verify(alice, stamp_of=store.session_stamp)
        store.set_password("alice", "pw", scrypt_n=FAST_N)  # re-created: old token still dead
        with pytest.raises(InvalidSession):
            signer.verify(alice, stamp_of=store.session_stamp)
        assert signer.verify(bob, stamp_of=store.session_stamp).username == "bob"
        store.set_password("bob", "new", scrypt_n=FAST_N)  # password change ends sessions
        with pytest.raises(InvalidSession):
            signer.verify(bob, stamp_of=store.session_stamp)
    finally:
        store.close()


def test_revocations_persist(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    store.revoke("gone", time.time() + 60)
    store.revoke("old", time.time() - 1)
    store.close()
    again = UserStore(tmp_path / "users.sqlite")
    try:
        assert again.is_revoked("gone") and not again.is_revoked("old")
        assert not again.is_revoked("other")
    finally:
        again.close()


def test_users_db_is_private(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.sqlite")
    try:
        store.set_password("alice", "pw", scrypt_n=FAST_N)
        for name in ("users.sqlite", "users.sqlite-wal", "users.sqlite-shm"):
            path = tmp_path / name
            assert path.exists(), name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    finally:
        store.close()
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "users.sqlite").touch(mode=0o644)
    UserStore(loose / "users.sqlite").close()
    assert stat.S_IMODE((loose / "users.sqlite").stat().st_mode) == 0o600


def _median_ms(fn: object, tries: int) -> float:
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@pytest.mark.slow
@pytest.mark.parametrize("scrypt_n", [2**8, 2**12])
def test_unknown_user_costs_what_a_known_one_does(tmp_path: Path, scrypt_n: int) -> None:
    """Accounts seeded at a low --scrypt-n: an unknown user must not take 10x longer (user
    enumeration). Medians of interleaved rounds, so a busy machine slows both alike."""
    store = UserStore(tmp_path / "users.sqlite")
    try:
        store.set_password("alice", "right", scrypt_n=scrypt_n)
        store.authenticate("nobody", "x")  # warm up the dummy
        known: list[float] = []
        unknown: list[float] = []
        for _ in range(7):
            known.append(_median_ms(lambda: store.authenticate("alice", "wrong"), 9))
            unknown.append(_median_ms(lambda: store.authenticate("nobody", "wrong"), 9))
        ratio = statistics.median(unknown) / statistics.median(known)
        assert 1 / 3 < ratio < 3, (statistics.median(known), statistics.median(unknown))
    finally:
        store.close()
