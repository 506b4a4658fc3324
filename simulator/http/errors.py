"""The one error-kind table: every request that got no HTTP answer is one of these, whichever
client sent it (the fast client and aiohttp both map their failures into it), with k6's error
codes and ``error`` tags; plus the one answer the engine names itself, a sequence conflict."""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """Why a request failed without an HTTP answer: the one vocabulary every transport maps
    into. Each kind is (``error`` tag, k6's numeric ``error_code``); the codes are k6's
    (``lib/netext/httpext/error_codes.go``): 1000 generic (k6 gives EOF and malformed
    responses this code), 1050 request timeout, 1201 broken pipe, 1210 dial error, 1211 dial
    timeout, 1212 connection refused, 1220 reset by peer, 1300 TLS.

    ``SEQUENCE_CONFLICT`` is an answer, not its absence: a 409 to a request that carried
    ``X-Sequence`` (the reference server's "that (device, sequence) is stored with another
    body": the upload was not stored). It keeps k6's code for that answer (1000 + 409) and adds
    the ``error`` tag k6 would not, so a threshold or the summary can name it."""

    REFUSED = ("refused", 1212)
    CONNECT_FAILED = ("connect-failed", 1210)
    CONNECT_TIMEOUT = ("connect-timeout", 1211)
    TIMEOUT = ("timeout", 1050)
    RESET = ("reset", 1220)
    BROKEN_PIPE = ("broken-pipe", 1201)
    CLOSED = ("closed-before-answer", 1000)
    TRUNCATED = ("truncated", 1000)
    BAD_RESPONSE = ("bad-response", 1000)
    TLS = ("tls", 1300)
    OTHER = ("error", 1000)
    SEQUENCE_CONFLICT = ("sequence-conflict", 1409)

    @property
    def tag(self) -> str:
        return self.value[0]

    @property
    def code(self) -> int:
        return self.value[1]

    @classmethod
    def from_tag(cls, tag: str) -> ErrorKind:
        return _KIND_BY_TAG.get(tag, cls.OTHER)


_KIND_BY_TAG = {k.tag: k for k in ErrorKind}


#: Kinds whose request never had a connection (its dial failed): k6 then has no sending,
#: waiting or receiving, so its http_req_duration is 0 (the dial's time is the iteration's).
UNCONNECTED = frozenset({ErrorKind.REFUSED, ErrorKind.CONNECT_FAILED, ErrorKind.CONNECT_TIMEOUT})


#: Dense small integers for the recorder's int64 rows (0: no network error); the recorder's
#: outcome key keeps 5 bits for them.
KIND_INDEX = {k: i for i, k in enumerate(ErrorKind, start=1)}
assert len(KIND_INDEX) < 32


KIND_BY_INDEX = {i: k for k, i in KIND_INDEX.items()}


def error_code(status: int, kind: ErrorKind | None) -> int:
    """k6's ``error_code``: the kind's code, 1000 + status for 4xx/5xx answers, else 0."""
    if kind is not None:
        return kind.code
    return 1000 + status if status >= 400 else 0
