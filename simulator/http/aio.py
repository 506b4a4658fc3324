"""The aiohttp transport: one shared connection pool; per-request keep-alive or
``Connection: close``; its failures classified into the shared error kinds; k6's connecting
and blocked times from its connector (:func:`_connector`), so neither is server latency, and
its sending time from the body's payload (:func:`_timed_body`), so it is not waiting; its
``data_sent``/``data_received`` are the bytes on the wire, answered or failed, as k6 counts them
on the connection (:func:`_counting_protocol`, :func:`_response_class`)."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from simulator.http.errors import ErrorKind
from simulator.http.transport import (
    Request,
    Response,
    SubmitViaSend,
    _flatten,
    _header_bytes,
    body_size,
    failure,
    keep_body,
    parse_set_cookie,
    waits,
)

if TYPE_CHECKING:
    import aiohttp
    import aiohttp.payload
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace


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


class _Dial:
    """One request's connection instants, set by :func:`_connector`'s hooks: per request (the
    sending task's :data:`_SENDING`), no state shared by requests."""

    __slots__ = ("asked", "dialled", "connected", "wrote", "proto", "read_from", "writer", "past")

    def __init__(self) -> None:
        self.asked = 0.0  # first asked the connector for a connection: k6's getConn
        self.dialled = 0.0  # its last attempt's socket made, after DNS: k6's connectStart
        self.connected = 0.0  # had the connection: k6's gotConn
        self.wrote = 0.0  # its body handed over (the last attempt's): k6's wroteRequest
        self.proto: Any = None  # the last attempt's connection (its protocol counts reads)
        self.read_from = 0  # what that connection had read before this request
        self.writer: Any = None  # the last attempt's writer (aiohttp counts its writes)
        self.past = (0, 0)  # (written, read) by earlier attempts (a retry on a stale connection)

    def had(self, proto: Any) -> None:
        """The connection an attempt got: what it reads from now on is this request's."""
        self.past = self.bytes()
        self.proto, self.writer = proto, None
        self.read_from = getattr(proto, "bytes_read", 0)

    def bytes(self) -> tuple[int, int]:
        """(written, read) on the wire so far, every attempt's: what aiohttp handed the socket
        (headers, body, chunk framing) and what the connection read (head, body, garbage)."""
        written, read = self.past
        if self.writer is not None:
            written += self.writer.output_size
        if self.proto is not None:
            read += getattr(self.proto, "bytes_read", 0) - self.read_from
        return written, read

    def sending(self, headers_at: float) -> float:
        """k6's http_req_sending: from having the connection to the body written; no later
        than the answer's headers (a server may answer before reading it all)."""
        if not self.wrote or not self.connected:
            return 0.0
        return max(0.0, min(self.wrote, headers_at) - self.connected)


#: the request the running task is sending, for :func:`_connector` (a task sends one at a time)
_SENDING: ContextVar[_Dial | None] = ContextVar("scfleet_aio_sending", default=None)


def _socket(addr: tuple[Any, ...]) -> socket.socket:
    """aiohappyeyeballs' default socket, the moment it is made noted as the dial's start."""
    dial = _SENDING.get()
    if dial is not None and not dial.dialled:  # happy eyeballs' first attempt
        dial.dialled = time.perf_counter()
    return socket.socket(family=addr[0], type=addr[1], proto=addr[2])


def _connector(limit: int) -> aiohttp.TCPConnector:
    """aiohttp's connector, timing each request's wait for a connection as k6 does: from when
    the built request asks for one (Go's getConn; aiohttp builds its request object before,
    ~0.05-0.2 ms of CPU here) to when it has it, and its dial from the socket's making.
    Through aiohttp's public hooks (``connect``, ``socket_factory``), not its tracing: a trace
    config makes aiohttp send six or seven signals a request whoever listens, +50 µs of CPU on a
    ~250 µs request (measured on 32 KB keep-alive uploads); these cost ~2 µs."""
    import aiohttp
    from aiohttp.client_proto import ResponseHandler

    class Connector(aiohttp.TCPConnector):
        async def connect(
            self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
        ) -> Connection:
            dial = _SENDING.get()
            if dial is None:
                return await super().connect(req, traces, timeout)
            if not dial.asked:  # a retry's wait (a stale reused connection) stays blocked
                dial.asked = time.perf_counter()
            dial.dialled = 0.0  # this attempt's (one after `connected` failed: transport.waits)
            conn = await super().connect(req, traces, timeout)
            dial.connected = time.perf_counter()
            dial.had(conn.protocol)
            return conn

    connector = Connector(
        limit=limit,
        limit_per_host=0,
        ttl_dns_cache=None,
        enable_cleanup_closed=False,
        socket_factory=_socket,
    )
    # aiohttp's protocol factory (an attribute since aiohttp 1.x; no public hook counts a
    # connection's reads): each connection's protocol counts what it read. Its arguments (the
    # loop) are taken from the partial replaced, not from a second private attribute
    factory = getattr(connector, "_factory", None)
    if isinstance(factory, functools.partial) and factory.func is ResponseHandler:
        connector._factory = functools.partial(
            _counting_protocol(), *factory.args, **factory.keywords
        )
    return connector


@functools.cache
def _counting_protocol() -> type[aiohttp.client_proto.ResponseHandler]:
    """aiohttp's protocol, counting the bytes its connection read: a failed request's (a cut
    body, a garbled or cut head) are in no response aiohttp hands back. +1 call a read."""
    from aiohttp.client_proto import ResponseHandler

    class Counting(ResponseHandler):
        bytes_read = 0

        def data_received(self, data: bytes) -> None:
            self.bytes_read += len(data)
            super().data_received(data)

    return Counting


@functools.cache
def _response_class() -> type[aiohttp.ClientResponse]:
    """aiohttp's response, handing the sending request (:data:`_SENDING`) the writer of its
    head and body, whose ``output_size`` counts every byte aiohttp wrote (public: a session's
    ``response_class``). aiohttp makes it once the request is written, before reading the
    answer, so a request whose answer fails has it too; one that failed before (refused, a
    reset while writing) counts what :class:`_Dial` had, the body once written."""
    import aiohttp

    class Counted(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            dial = _SENDING.get()
            writer = kwargs.get("stream_writer")  # handed over by keyword (aiohttp 3.1x)
            if dial is not None and writer is not None:
                dial.writer = writer

    return Counted


@functools.cache
def _timed_body() -> type[aiohttp.payload.BytesPayload]:
    """aiohttp's payload for a bytes body (what it makes of ``data=bytes`` itself) noting when
    aiohttp has written it: the write awaits the socket's drain past 64 KB, so for a body the
    server reads slowly its end is when at most the transport's low-water mark (16 KB) is left
    unsent, beyond what the kernel holds. A public hook (``Payload.write_with_length``), ~1 µs
    a request; a trace config's ``on_request_chunk_sent`` costs its +50 µs (:func:`_connector`)."""
    from aiohttp.abc import AbstractStreamWriter
    from aiohttp.payload import BytesPayload

    class TimedBody(BytesPayload):
        def __init__(
            self, value: bytes | memoryview, dial: _Dial, req: Request, nbytes: int
        ) -> None:
            super().__init__(value)
            self._dial = dial
            self._req, self._nbytes = req, nbytes

        async def write_with_length(
            self, writer: AbstractStreamWriter, content_length: int | None
        ) -> None:
            await super().write_with_length(writer, content_length)
            self._dial.wrote = time.perf_counter()
            # what aiohttp handed the socket, head and body (an estimate without its count)
            self._req.written = getattr(writer, "output_size", 0) or self._nbytes

    return TimedBody


class AiohttpTransport(SubmitViaSend):
    """aiohttp underneath: one pool for the whole fleet, no client-side cookie jar.

    Bytes are counted on the wire, as the fast client and k6 count them, answered or failed:
    what aiohttp's writer handed the transport (:func:`_response_class`) and what the
    connection read (:func:`_counting_protocol`). What aiohttp does not let it see: a request
    that failed before aiohttp made its response object (the connection died as the head was
    handed over) counts its body's bytes only once written; every attempt of a retried
    idempotent request counts, as on the wire."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, limit: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.limit = limit  # connections at most (0: one per request in flight, as the fast client)
        self._session: Any = None

    def _ensure(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=_connector(self.limit),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "scfleet/0.1"},
                auto_decompress=False,
                response_class=_response_class(),
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
        dial = _Dial()
        sending = _SENDING.set(dial)
        started = time.perf_counter()
        try:
            async with session.request(
                req.method,
                self.base_url + req.path,
                data=_timed_body()(data, dial, req, head + size) if data else data,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                headers_at = time.perf_counter()
                if resp.status == 101:  # no request asks to switch: k6 throws at once
                    import aiohttp

                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=101, message="unsupported response status"
                    )
                kept = bytearray()  # read to its end, kept up to MAX_KEPT_BODY
                cut = 0
                async for data in resp.content.iter_any():
                    cut += keep_body(kept, data)
                body = bytes(kept)
                ended = time.perf_counter()
                set_cookie = resp.headers.getall("Set-Cookie", ())
                jar, cleared = parse_set_cookie(set_cookie) if set_cookie else ({}, ())
                written, read = dial.bytes()
                if dial.writer is None:  # an aiohttp that kept its writer: estimates
                    written = head + size
                if not hasattr(dial.proto, "bytes_read"):
                    read = sum(len(k) + len(v) + 4 for k, v in resp.raw_headers) + 19
                    read += len(body) + cut
                started = dial.asked or started
                blocked, connecting = waits(started, dial.dialled, dial.connected)
                return Response(
                    body_cut=cut,
                    status=resp.status,
                    body=body,
                    headers=resp.headers,
                    started=started,
                    headers_at=headers_at,
                    ended=ended,
                    sent=written,
                    received=read,
                    set_cookies=jar,
                    cleared_cookies=cleared,
                    connecting=connecting,
                    sending=dial.sending(headers_at),
                    blocked=blocked,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a counted failed request
            started = dial.asked or started
            resp = failure(classify_aiohttp(exc), started, time.perf_counter())
            resp.blocked, resp.connecting = waits(started, dial.dialled, dial.connected)
            # k6 counts bytes on the connection, whatever became of the request: what it wrote
            # and what it read before the failure (a cut body, a garbled or cut head)
            written, resp.received = dial.bytes()
            resp.sent = written or req.written
            return resp
        finally:
            _SENDING.reset(sending)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
