"""Users, password hashes and test-account seeding.

Hashes use Werkzeug's string format (``scrypt:N:r:p$salt$hex``, also ``pbkdf2:sha256:iters``), so
the cost of a login matches a Flask app that calls ``generate_password_hash``, and hashes move
between the two unchanged. scrypt is slow on purpose; the server runs it in a thread pool
(hashlib releases the GIL while hashing) so the event loop keeps answering.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import random
import secrets
import sqlite3
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reference_server.ledger import open_named
from scfleet_core.errors import ConfigError
from scfleet_core.limits import MAX_ACCOUNTS
from scfleet_core.secrets import Secret

DEFAULT_SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
#: the largest N a hash can be made with: OpenSSL takes at most 2 GiB of ``maxmem`` (1 GiB here)
MAX_SCRYPT_N = 2**20
_SALT_CHARS = string.ascii_letters + string.digits
_PASSWORD_CHARS = string.ascii_letters + string.digits

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS logins (username TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS logins_username ON logins (username)",
    "CREATE TABLE IF NOT EXISTS revoked_sessions (sid TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
)


def _reveal(password: str | Secret) -> bytes:
    return (password.reveal() if isinstance(password, Secret) else password).encode()


def scrypt_maxmem(n: int, r: int, p: int) -> int:
    """The memory OpenSSL's scrypt needs, ``128·r·(N + p + 2)`` bytes (its exact check). Before,
    132·N·r·p: too little below N = 96, so ``--scrypt-n 2`` up to 64 failed every hash."""
    return 128 * r * (n + p + 2)


def hash_password(password: str | Secret, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> str:
    """Salted scrypt hash in Werkzeug's format; ``scrypt_n`` trades login cost for speed."""
    if scrypt_n < 2 or scrypt_n & (scrypt_n - 1) or scrypt_n > MAX_SCRYPT_N:
        raise ValueError(f"scrypt N must be a power of two in 2..{MAX_SCRYPT_N}, got {scrypt_n}")
    salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    digest = hashlib.scrypt(
        _reveal(password),
        salt=salt.encode(),
        n=scrypt_n,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=scrypt_maxmem(scrypt_n, SCRYPT_R, SCRYPT_P),
    ).hex()
    return f"scrypt:{scrypt_n}:{SCRYPT_R}:{SCRYPT_P}${salt}${digest}"


def verify_password(stored: str, password: str | Secret) -> bool:
    """Constant-time check of a password against a stored scrypt or PBKDF2 hash."""
    try:
        method, salt, expected = stored.split("$", 2)
        name, *params = method.split(":")
        if name == "scrypt":
            n, r, p = (int(v) for v in params) if params else (2**15, 8, 1)
            actual = hashlib.scrypt(
                _reveal(password), salt=salt.encode(), n=n, r=r, p=p, maxmem=scrypt_maxmem(n, r, p)
            ).hex()
        elif name == "pbkdf2":
            algo = params[0] if params else "sha256"
            iterations = int(params[1]) if len(params) > 1 else 1_000_000
            actual = hashlib.pbkdf2_hmac(algo, _reveal(password), salt.encode(), iterations).hex()
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _same_cost_hash(stored: str) -> str:
    """A hash of a random password made with the *same method and parameters* as ``stored``,
    so checking an unknown user costs what checking a known one does (no user enumeration by
    response time, whatever ``--scrypt-n`` the accounts were seeded with)."""
    method = stored.split("$", 1)[0]
    name, *params = method.split(":")
    password = secrets.token_hex(8).encode()
    salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    try:
        if name == "scrypt":
            n, r, p = (int(v) for v in params) if params else (2**15, 8, 1)
            digest = hashlib.scrypt(
                password, salt=salt.encode(), n=n, r=r, p=p, maxmem=scrypt_maxmem(n, r, p)
            )
            return f"scrypt:{n}:{r}:{p}${salt}${digest.hex()}"
        if name == "pbkdf2":
            algo = params[0] if params else "sha256"
            iterations = int(params[1]) if len(params) > 1 else 1_000_000
            digest = hashlib.pbkdf2_hmac(algo, password, salt.encode(), iterations)
            return f"pbkdf2:{algo}:{iterations}${salt}${digest.hex()}"
    except (ValueError, TypeError):
        pass
    return hash_password(password.decode())


def _private_db(db_path: Path) -> None:
    """Create the database file 0600 before SQLite does (its -wal/-shm copy the mode)."""
    fd = os.open(db_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _connect(db_path: Path) -> sqlite3.Connection:
    return open_named(db_path, _open)


def _open(db_path: Path) -> sqlite3.Connection:
    _private_db(db_path)
    conn = sqlite3.connect(db_path, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in _SCHEMA:
        conn.execute(statement)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
    if "session_stamp" not in columns:  # a data dir from before sessions were revocable
        conn.execute("ALTER TABLE users ADD COLUMN session_stamp TEXT")
    conn.execute(
        "UPDATE users SET session_stamp = lower(hex(randomblob(16))) WHERE session_stamp IS NULL"
    )
    conn.commit()
    return conn


class UserStore:
    """The ``users``, ``logins`` and ``revoked_sessions`` tables; thread-safe.

    Writes and password checks run in the hashing pool; :meth:`session_stamp` and
    :meth:`is_revoked` are cheap and run on the event loop (a separate read connection, so a
    commit in the pool never blocks the loop; WAL lets it read meanwhile).
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._conn = _connect(self.db_path)
        self._reader = sqlite3.connect(self.db_path, timeout=30.0, check_same_thread=False)
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._dummy: str | None = None
        now = time.time()
        self._revoked = {
            sid
            for (sid,) in self._conn.execute(
                "SELECT sid FROM revoked_sessions WHERE expires_at > ?", (now,)
            )
        }

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()

    def set_password(
        self, username: str, password: str | Secret, *, scrypt_n: int = DEFAULT_SCRYPT_N
    ) -> None:
        """Create the user or replace its password."""
        stored = hash_password(password, scrypt_n=scrypt_n)
        self.set_hashes([(username, stored)])

    def set_hashes(self, rows: list[tuple[str, str]]) -> None:
        """Create users or replace their passwords; either way their old sessions end."""
        now = time.time()
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT INTO users (username, password_hash, created_at, session_stamp) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(username) DO UPDATE SET "
                "password_hash = excluded.password_hash, session_stamp = excluded.session_stamp",
                [(user, stored, now, secrets.token_hex(16)) for user, stored in rows],
            )
            self._dummy = None

    def delete_user(self, username: str) -> bool:
        """Remove a user; their session tokens stop verifying at once."""
        with self._lock, self._conn:
            cur = self._conn.execute("DELETE FROM users WHERE username = ?", (username,))
        return cur.rowcount > 0

    def password_hash(self, username: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        return row[0] if row else None

    def session_stamp(self, username: str) -> str | None:
        """The user's current session stamp (part of every token's MAC); None: no such user."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT session_stamp FROM users WHERE username = ?", (username,)
            ).fetchone()
        return str(row[0]) if row else None

    def is_revoked(self, sid: str) -> bool:
        return sid in self._revoked

    def revoke(self, sid: str, expires_at: float) -> None:
        """Revoke one session (logout): at once in memory, then durably; expired rows pruned."""
        self._revoked.add(sid)
        now = time.time()
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO revoked_sessions (sid, expires_at) VALUES (?, ?)",
                (sid, expires_at),
            )
            self._conn.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?", (now,))

    def _dummy_hash(self) -> str:
        """A stand-in hash with the parameters of the stored users (see _same_cost_hash)."""
        dummy = self._dummy
        if dummy is None:
            with self._lock:
                row = self._conn.execute(
                    "SELECT password_hash FROM users ORDER BY rowid DESC LIMIT 1"
                ).fetchone()
            template = row[0] if row else f"scrypt:{DEFAULT_SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}$x$y"
            dummy = self._dummy = _same_cost_hash(template)
        return dummy

    def authenticate(self, username: str, password: str | Secret) -> bool:
        """Check the password and, on success, record the login; blocking (scrypt)."""
        stored = self.password_hash(username)
        if stored is None:
            verify_password(self._dummy_hash(), password)
            return False
        if not verify_password(stored, password):
            return False
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO logins (username, at) VALUES (?, ?)", (username, time.time())
            )
        return True

    def login_counts(self) -> dict[str, int]:
        """Successful logins per user; tests check one login per device per session."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT username, COUNT(*) FROM logins GROUP BY username"
            ).fetchall()
        return {user: int(count) for user, count in rows}

    def user_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])


def create_accounts(
    data_dir: Path,
    count: int,
    prefix: str = "loadtest",
    seed: int | None = None,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> list[tuple[str, Secret]]:
    """Create ``count`` users with random passwords in the data dir's user store; returns the
    credentials, which exist nowhere else (the caller keeps them in memory or writes them).

    ``seed`` makes the credentials reproducible (test data only; unseeded passwords come from
    :mod:`secrets`). Existing users of the same name get the new password. All or nothing:
    interrupted (Ctrl-C), it stores no user, as the passwords would exist nowhere else.
    """
    if not 1 <= count <= MAX_ACCOUNTS:
        raise ConfigError(f"account count must be 1..{MAX_ACCOUNTS}, got {count}", key="--count")
    if not prefix or any(c not in _SALT_CHARS + "._-" for c in prefix):
        raise ConfigError(f"account prefix must be [A-Za-z0-9._-]+, got {prefix!r}", key="--prefix")
    data_dir = Path(data_dir)
    from reference_server.config import ServerConfig, prepare_data_dir

    prepare_data_dir(data_dir)
    rng: random.Random | secrets.SystemRandom = (
        random.Random(seed) if seed is not None else secrets.SystemRandom()
    )
    width = max(4, len(str(count)))
    creds = [
        (f"{prefix}{i:0{width}d}", "".join(rng.choice(_PASSWORD_CHARS) for _ in range(16)))
        for i in range(1, count + 1)
    ]
    workers = max(1, min(len(creds), os.cpu_count() or 1))
    pool = ThreadPoolExecutor(workers)
    try:
        hashes = list(pool.map(lambda c: hash_password(c[1], scrypt_n=scrypt_n), creds))
    finally:
        # Ctrl-C: drop the queued hashes (``with`` waited for every one: hours for a million)
        pool.shutdown(wait=True, cancel_futures=True)
    store = UserStore(ServerConfig(data_dir=data_dir).users_path)
    try:
        store.set_hashes([(user, stored) for (user, _), stored in zip(creds, hashes, strict=True)])
    finally:
        store.close()
    return [(user, Secret(password)) for user, password in creds]


def seed_accounts(
    data_dir: Path,
    count: int,
    csv_path: Path,
    prefix: str = "loadtest",
    seed: int | None = None,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> None:
    """:func:`create_accounts`, then ``username,password`` to a CSV (mode 0600), for
    ``scfleet accounts seed`` and a login scenario against a server started by hand."""
    creds = create_accounts(data_dir, count, prefix, seed, scrypt_n=scrypt_n)
    csv_path = Path(csv_path)
    try:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(csv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_TRUNC
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["username", "password"])
            writer.writerows((user, password.reveal()) for user, password in creds)
    except OSError as exc:
        raise ConfigError(
            f"cannot write CSV: {exc.strerror or exc}", source=str(csv_path)
        ) from None
