"""Signed session cookies: stateless, so verify costs one HMAC and no database round trip.

A token is ``base64url(json{"u": username, "exp": expiry}) "." base64url(hmac_sha256)``. The key
is generated once per data dir (``secret.key``, mode 0600) or read from ``--secret-key-file``, so
cookies survive a server restart on the same data dir.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from simulator.errors import ConfigError

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
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        except FileExistsError:
            pass  # another process made it first; read theirs
        except OSError as exc:
            raise ConfigError(
                f"cannot create signing key: {exc.strerror}", source=str(path)
            ) from None
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read signing key: {exc.strerror}", source=str(path)) from None
    if len(key) < _MIN_KEY_BYTES:
        raise ConfigError(f"signing key shorter than {_MIN_KEY_BYTES} bytes", source=str(path))
    return key


class SessionSigner:
    """Issues and checks session tokens with HMAC-SHA256 and an expiry."""

    def __init__(self, key: bytes, ttl_s: float) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, username: str, now: float | None = None) -> tuple[str, float]:
        """A token for ``username`` and its expiry (epoch seconds)."""
        expires = (time.time() if now is None else now) + self.ttl_s
        body = json.dumps({"u": username, "exp": round(expires, 3)}, separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}.{self._mac(payload)}", expires

    def verify(self, token: str | None, now: float | None = None) -> tuple[str, float]:
        """The username and expiry a valid token carries; :class:`InvalidSession` otherwise."""
        if not token:
            raise InvalidSession("no session cookie")
        payload, sep, mac = token.partition(".")
        try:
            valid = bool(sep) and hmac.compare_digest(mac.encode(), self._mac(payload).encode())
        except UnicodeError:
            valid = False
        if not valid:
            raise InvalidSession("bad session signature")
        try:
            data = json.loads(_unb64(payload))
            username, expires = str(data["u"]), float(data["exp"])
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidSession("malformed session") from None
        if (time.time() if now is None else now) >= expires:
            raise InvalidSession("session expired")
        return username, expires
