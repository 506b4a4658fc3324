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
import enum
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Protocol

Body = bytes | memoryview | Sequence[bytes | memoryview] | None


class ErrorKind(enum.Enum):
    """Why a request failed without an HTTP answer: the one vocabulary every transport maps
    into. Each kind is (``error`` tag, k6's numeric ``error_code``); the codes are k6's
    (``lib/netext/httpext/error_codes.go``): 1000 generic (k6 gives EOF and malformed
    responses this code), 1050 request timeout, 1201 broken pipe, 1210 dial error, 1211 dial
    timeout, 1212 connection refused, 1220 reset by peer, 1300 TLS."""

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
#: Dense small integers for the recorder's int64 rows (0: no network error).
KIND_INDEX = {k: i for i, k in enumerate(ErrorKind, start=1)}
KIND_BY_INDEX = {i: k for k, i in KIND_INDEX.items()}


def error_code(status: int, kind: ErrorKind | None) -> int:
    """k6's ``error_code``: the kind's code, 1000 + status for 4xx/5xx answers, else 0."""
    if kind is not None:
        return kind.code
    return 1000 + status if status >= 400 else 0


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = None
    keep_alive: bool = True
    cookies: Mapping[str, str] | None = None


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
    kind: ErrorKind | None = None  # set with ``error`` when there was no HTTP answer

    def json(self) -> Any:
        import json

        return json.loads(self.body)


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


def failure(kind: ErrorKind, started: float, ended: float) -> Response:
    """The response of a request that got no HTTP answer."""
    return Response(
        status=0, error=kind.tag, started=started, headers_at=ended, ended=ended, kind=kind
    )


def classify_aiohttp(exc: BaseException) -> ErrorKind:
    """aiohttp's exceptions in the shared vocabulary (:class:`ErrorKind`)."""
    import errno
    import ssl

    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return ErrorKind.TLS
        if isinstance(exc.os_error, ConnectionRefusedError):
            return ErrorKind.REFUSED
        if isinstance(exc.os_error, TimeoutError):
            return ErrorKind.CONNECT_TIMEOUT
        return ErrorKind.CONNECT_FAILED
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorKind.CLOSED
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ErrorKind.TRUNCATED
    if isinstance(exc, aiohttp.ClientResponseError):
        return ErrorKind.BAD_RESPONSE
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.TLS
    if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE:
        return ErrorKind.BROKEN_PIPE
    if isinstance(exc, ConnectionResetError | aiohttp.ClientOSError):
        return ErrorKind.RESET
    return ErrorKind.OTHER


class AiohttpTransport(SubmitViaSend):
    """aiohttp underneath: one pool for the whole fleet, no client-side cookie jar."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: Any = None

    def _ensure(self) -> Any:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, ttl_dns_cache=None, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "scfleet/0.1"},
                auto_decompress=False,
            )
        return self._session

    async def start(self) -> None:
        self._ensure()

    async def send(self, req: Request) -> Response:
        session = self._ensure()
        headers = req.headers
        if not req.keep_alive:
            headers = {**headers, "Connection": "close"}
        if req.cookies:
            headers = {**headers, "Cookie": "; ".join(f"{k}={v}" for k, v in req.cookies.items())}
        data = _flatten(req.body)
        size = body_size(data)
        head = _header_bytes(req.method, req.path, headers, size)
        started = time.perf_counter()
        try:
            async with session.request(
                req.method,
                self.base_url + req.path,
                data=data,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                headers_at = time.perf_counter()
                body = await resp.read()
                ended = time.perf_counter()
                set_cookie = resp.headers.getall("Set-Cookie", ())
                jar, cleared = parse_set_cookie(set_cookie) if set_cookie else ({}, ())
                rhead = sum(len(k) + len(v) + 4 for k, v in resp.raw_headers) + 17
                return Response(
                    status=resp.status,
                    body=body,
                    headers=resp.headers,
                    started=started,
                    headers_at=headers_at,
                    ended=ended,
                    sent=head + size,
                    received=rhead + len(body),
                    set_cookies=jar,
                    cleared_cookies=cleared,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a counted failed request
            return failure(classify_aiohttp(exc), started, time.perf_counter())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass
class FakeReply:
    status: int = 200
    body: bytes = b'{"status":"ok"}'
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    set_cookies: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[FakeReply] | FakeReply]


class FakeTransport(SubmitViaSend):
    """In-memory transport: a handler decides each reply; requests are kept for assertions."""

    def __init__(self, handler: Handler | None = None, *, keep: bool = True) -> None:
        self.handler = handler or (lambda req: FakeReply())
        self.requests: list[Request] = []
        self.keep = keep
        self.closed = False

    async def start(self) -> None:
        pass

    async def send(self, req: Request) -> Response:
        if self.keep:
            self.requests.append(req)
        started = time.perf_counter()
        reply = self.handler(req)
        if asyncio.iscoroutine(reply) or isinstance(reply, Awaitable):
            reply = await reply
        assert isinstance(reply, FakeReply)
        ended = time.perf_counter()
        size = body_size(req.body)
        if reply.error:
            kind = ErrorKind.from_tag(reply.error)
            return Response(
                status=0,
                error=reply.error,
                started=started,
                headers_at=ended,
                ended=ended,
                kind=kind,
            )
        return Response(
            status=reply.status,
            body=reply.body,
            headers=reply.headers,
            started=started,
            headers_at=ended,
            ended=ended,
            sent=size,
            received=len(reply.body),
            set_cookies=dict(reply.set_cookies),
        )

    async def close(self) -> None:
        self.closed = True
