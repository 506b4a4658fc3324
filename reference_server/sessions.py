"""Signed session cookies: verify costs one HMAC and one indexed user lookup.

A token is ``base64url(json{"u": username, "exp": expiry_ms, "sid": id}) "." base64url(mac)``
where the MAC is HMAC-SHA256 over the payload and the user's session stamp. The key
is generated once per data dir (``secret.key``, mode 0600) or read from ``--secret-key-file``, so
cookies survive a server restart on the same data dir.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scfleet_core.errors import ConfigError

KEY_FILE_NAME = "secret.key"
_MIN_KEY_BYTES = 16


class InvalidSession(Exception):
    """The cookie is missing, forged, malformed or expired; the message says which."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(data_dir: Path, key_file: Path | None = None) -> bytes:
    """The signing key: from ``key_file`` if given, else ``DATA_DIR/secret.key`` (made if absent)."""
    path = key_file if key_file is not None else Path(data_dir) / KEY_FILE_NAME
    if key_file is None and not path.exists():
        _create_key(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read signing key: {exc.strerror}", source=str(path)) from None
    if len(key) < _MIN_KEY_BYTES:
        # one left empty by an older version's failed write: deleting it is the way out
        remedy = "" if key_file is not None else " (delete it to make a new one)"
        raise ConfigError(
            f"signing key shorter than {_MIN_KEY_BYTES} bytes{remedy}", source=str(path)
        )
    return key


def _create_key(path: Path) -> None:
    """Write a new key whole, or leave no file: written and synced beside ``path``, then
    linked to it (fails if another process made one first: theirs is read). Created in place
    and written after, a disk that filled in between left an empty key that failed every
    later start ("shorter than 16 bytes") until it was deleted by hand."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:  # a short write is retried until it fails
            f.write((secrets.token_hex(32) + "\n").encode("ascii"))
            f.flush()
            os.fsync(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(part, path)
    except OSError as exc:
        raise ConfigError(f"cannot create signing key: {exc.strerror}", source=str(path)) from None
    finally:
        part.unlink(missing_ok=True)


@dataclass(frozen=True)
class Session:
    """What a valid token says: who, until when (epoch seconds), and its id for revocation."""

    username: str
    expires: float
    sid: str


StampLookup = Callable[[str], "str | None"]


class SessionSigner:
    """Issues and checks session tokens with HMAC-SHA256, an expiry and a per-user stamp.

    The MAC covers the user's *session stamp* (a random value stored with the user, replaced
    when the password changes), so a token stops verifying when its user is deleted or
    re-created; single tokens are revoked by ``sid`` (logout). The expiry is an integer of
    milliseconds, parsed strictly and bounded by ``now + ttl``: a NaN, Infinity or far-future
    expiry never verifies, even under a valid signature.
    """

    def __init__(self, key: bytes, ttl_s: float) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _mac(self, payload: str, stamp: str) -> str:
        msg = f"{payload}.{stamp}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest())

    def issue(self, username: str, stamp: str = "", now: float | None = None) -> tuple[str, float]:
        """A token for ``username`` (whose current session stamp is ``stamp``) and its expiry."""
        exp_ms = int(((time.time() if now is None else now) + self.ttl_s) * 1000)
        sid = _b64(secrets.token_bytes(12))
        body = json.dumps({"u": username, "exp": exp_ms, "sid": sid}, separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}.{self._mac(payload, stamp)}", exp_ms / 1000

    def verify(
        self, token: str | None, now: float | None = None, stamp_of: StampLookup | None = None
    ) -> Session:
        """The session a valid token carries; :class:`InvalidSession` otherwise.

        ``stamp_of(username)`` gives the user's current stamp, or None for no such user.
        """
        if not token:
            raise InvalidSession("no session cookie")
        payload, sep, mac = token.partition(".")
        try:
            data: Any = json.loads(_unb64(payload)) if sep else None
            username, exp_ms, sid = data["u"], data["exp"], data["sid"]
        except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
            raise InvalidSession("bad session signature") from None
        if not (isinstance(username, str) and isinstance(sid, str)):
            raise InvalidSession("malformed session")
        stamp = "" if stamp_of is None else stamp_of(username)
        try:
            valid = stamp is not None and hmac.compare_digest(
                mac.encode(), self._mac(payload, stamp).encode()
            )
        except UnicodeError:
            valid = False
        if not valid:  # forged, or the user was deleted or changed password
            raise InvalidSession("bad session signature")
        now_s = time.time() if now is None else now
        if type(exp_ms) is not int or not 0 < exp_ms <= (now_s + self.ttl_s) * 1000 + 1000:
            raise InvalidSession("malformed session")
        if now_s * 1000 >= exp_ms:
            raise InvalidSession("session expired")
        return Session(username, exp_ms / 1000, sid)
