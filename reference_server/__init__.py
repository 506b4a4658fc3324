"""SignalCraft-compatible reference server: the embedded default target of load runs.

It speaks the same HTTP contract as the real SignalCraft Flask app (raw PCM uploads from ESP32
sensors, multipart audio analysis, cookie sessions) so a load run has something realistic to hit
when no ``--target`` is given. Modules:

- :mod:`reference_server.config`   -- options, parsed into a frozen :class:`ServerConfig`
- :mod:`reference_server.ledger`   -- batched SQLite ledger of accepted uploads, ``read_uploads``
- :mod:`reference_server.analysis` -- decoding, log-mel features, anomaly score, CPU burn
- :mod:`reference_server.accounts` -- users, salted scrypt hashes, ``seed_accounts``
- :mod:`reference_server.sessions` -- HMAC-signed session cookies and the signing key
- :mod:`reference_server.app`      -- the aiohttp application and its handlers
- :mod:`reference_server.server`   -- process entry: listen, print ``READY``, stop on signals
- :mod:`reference_server.cli`      -- ``scfleet serve`` and ``scfleet accounts seed``

Heavy imports (aiohttp, numpy, soundfile) stay out of this package's ``__init__`` so importing the
CLI registration is cheap.
"""

from __future__ import annotations

UPLOAD_PATH = "/api/esp32/audio/upload"
ANALYZE_PATH = "/api/lightweight-analyze"
LOGIN_PATH = "/api/auth/login"
VERIFY_PATH = "/api/auth/verify"
LOGOUT_PATH = "/api/auth/logout"
HEALTH_PATH = "/health"
STATS_PATH = "/api/stats"
SESSION_COOKIE = "session"
