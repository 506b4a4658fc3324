"""The HTTP transport seam: behaviours build a :class:`Request`, a transport sends it.

:class:`AiohttpTransport` is the real one (one shared connection pool; per-request keep-alive
or ``Connection: close``, as a firmware that opens a socket per upload would). Cookies are kept
by each device, not by the transport, so 100,000 devices do not mean 100,000 sessions.
:class:`FakeTransport` answers in memory from a handler, for tests without a network.

A transport never raises for network trouble: refused connections, resets and timeouts come
back as a :class:`Response` with ``status == 0`` and ``error`` set, so the run goes on and the
failure is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Protocol

from simulator.http.errors import ErrorKind

Body = bytes | memoryview | Sequence[bytes | memoryview] | None

#: The most of a response body either client keeps (``Response.body``); the rest is read to
#: the body's end, counted (``received``, ``body_cut``) and dropped. Without it a server
#: sending a 2 GB or endless body took the generator's memory with it (1.8-3 GB RSS for two
#: requests); now it costs time, up to the request timeout, as it would a device.
MAX_KEPT_BODY = 1 << 20


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = None
    keep_alive: bool = True
    cookies: Mapping[str, str] | None = None
    #: bytes of it handed to the socket, set by the transport once written: what a request cut
    #: before its answer counts in ``data_sent`` (k6 counts a cut request's written bytes)
    written: int = 0


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    started: float = 0.0  # perf_counter() when the request began
    headers_at: float = 0.0  # response headers received
    ended: float = 0.0  # body fully read
    sent: int = 0
    received: int = 0
    set_cookies: dict[str, str] = field(default_factory=dict)
    cleared_cookies: tuple[str, ...] = ()
    connecting: float = 0.0  # seconds spent opening a new connection (0 when reused)
    sending: float = 0.0  # seconds spent handing the request to the socket
    #: seconds waiting for a connection before its dial (or a freed one): k6's blocked,
    #: outside the duration, which starts at ``started + blocked + connecting`` (:func:`waits`)
    blocked: float = 0.0
    kind: ErrorKind | None = None  # set with ``error`` when there was no HTTP answer
    body_cut: int = 0  # body bytes read past MAX_KEPT_BODY and not kept

    @property
    def body_size(self) -> int:
        """The whole body's length, kept or not (a check's body_min/max_bytes)."""
        return len(self.body) + self.body_cut

    def json(self) -> Any:
        import json

        if self.body_cut:
            raise ValueError(cut_body_text(len(self.body), self.body_cut))
        return json.loads(self.body)


def cut_body_text(kept: int, cut: int) -> str:
    """Why a cut body cannot be parsed (``Response.json``, a device's ``Reply.json``)."""
    return f"the response body has {kept + cut} bytes; only the first {kept} were kept"


def keep_body(kept: bytearray, data: bytes | bytearray | memoryview) -> int:
    """Append what of ``data`` fits under :data:`MAX_KEPT_BODY` to ``kept``; the bytes that
    did not (``Response.body_cut``)."""
    room = MAX_KEPT_BODY - len(kept)
    if len(data) <= room:
        kept += data
        return 0
    if room > 0:
        kept += data[:room]
    return len(data) - max(room, 0)


class Transport(Protocol):
    async def start(self) -> None:
        """Get ready before the schedule starts, so the first request pays no set-up."""

    async def send(self, req: Request) -> Response: ...

    def submit(self, req: Request, done: Callable[[Response], None]) -> None:
        """Start ``req`` without awaiting it; ``done(response)`` is called once."""

    async def close(self) -> None: ...


class SubmitViaSend:
    """``submit()`` for transports whose natural form is ``async send()``: a task each."""

    _submitted: set[asyncio.Task[Response]]

    async def send(self, req: Request) -> Response:
        raise NotImplementedError

    def submit(self, req: Request, done: Callable[[Response], None]) -> None:
        if not hasattr(self, "_submitted"):
            self._submitted = set()
        task = asyncio.get_running_loop().create_task(self.send(req))
        self._submitted.add(task)

        def finished(t: asyncio.Task[Response]) -> None:
            self._submitted.discard(t)
            if not t.cancelled():
                done(t.result())

        task.add_done_callback(finished)


def body_size(body: Body) -> int:
    if body is None:
        return 0
    if isinstance(body, bytes | memoryview):
        return body.nbytes if isinstance(body, memoryview) else len(body)
    return sum(b.nbytes if isinstance(b, memoryview) else len(b) for b in body)


def _flatten(body: Body) -> bytes | memoryview | None:
    if body is None or isinstance(body, bytes | memoryview):
        return body
    return b"".join(body)


def _header_bytes(method: str, path: str, headers: Mapping[str, str], body_len: int) -> int:
    """Approximate bytes of the request head, for ``data_sent`` (aiohttp adds a few)."""
    n = len(method) + len(path) + 12
    for k, v in headers.items():
        n += len(k) + len(v) + 4
    return n + 2 + (len(str(body_len)) + 18 if body_len else 0)


def parse_set_cookie(values: Sequence[str]) -> tuple[dict[str, str], tuple[str, ...]]:
    jar: dict[str, str] = {}
    cleared: list[str] = []
    for raw in values:
        c: SimpleCookie = SimpleCookie()
        try:
            c.load(raw)
        except Exception:  # a malformed cookie is ignored, as browsers do
            continue
        for name, morsel in c.items():
            if morsel["max-age"] == "0" or (morsel.value == "" and morsel["expires"]):
                cleared.append(name)
            else:
                jar[name] = morsel.value
    return jar, tuple(cleared)


def waits(started: float, dialled: float, connected: float) -> tuple[float, float]:
    """A request's ``(blocked, connecting)`` as k6 splits them, for every transport: it began
    at ``started`` and had a connection at ``connected`` (0: never); ``dialled`` is when the
    dial that made that connection began (0: a reused one). Connecting is the part of the dial
    after the request began (a dial may predate it: started for a request a freed connection
    then served); the rest, a wait for a freed connection, a pool slot or a dial, is blocked.
    Neither is in the duration, which starts at ``started + blocked + connecting``. A dial
    that began after ``connected`` is a later attempt that failed (a retry after the reused
    connection died unanswered): it made no connection, so the one had is not its."""
    if not connected:
        return 0.0, 0.0
    if dialled and dialled <= connected:
        begin = dialled if dialled > started else started
        return begin - started, connected - begin
    return connected - started, 0.0


def failure(kind: ErrorKind, started: float, ended: float) -> Response:
    """The response of a request that got no HTTP answer."""
    return Response(
        status=0, error=kind.tag, started=started, headers_at=ended, ended=ended, kind=kind
    )
