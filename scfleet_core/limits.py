"""Bounds that both the engine (a scenario's ``[server]`` table) and the reference server
(``scfleet serve``, ``scfleet accounts seed``) check: one place, so the two cannot drift apart
(the engine and the server may not import each other)."""

from __future__ import annotations

#: The smallest upload limit: one 16-bit sample (the server refused less at start, while a
#: scenario's ``[server]`` table took 1, so ``scfleet run`` failed only as the server started).
MIN_UPLOAD_BYTES = 2

#: The largest upload body or audio file the reference server may be told to accept
#: (``[server] max_upload_bytes``, ``serve --max-upload-bytes``): a body is held in memory.
MAX_UPLOAD_BYTES = 1 << 30

#: The most test accounts one seed makes (``[server] accounts``, ``accounts seed --count``):
#: the project's scale goal, a million devices, each logging in as its own user.
MAX_ACCOUNTS = 1_000_000
