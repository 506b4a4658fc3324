"""A lean HTTP/1.1 client on asyncio protocols — the default transport for http:// targets.

Why not aiohttp everywhere: on this workload (32 KB POSTs at thousands per second) the
generator's CPU per request is the figure that decides how many devices one core can emulate,
and a general client spends most of it on features a sensor upload never uses. This client
writes a pre-built head plus zero-copy body buffers with ``writelines``, parses the response in
``data_received`` and keeps idle connections in a pool; it also times each phase exactly
(connecting, sending, waiting, receiving), which k6 reports and aiohttp does not expose cheaply.

Scope, on purpose: HTTP/1.1 with Content-Length or chunked responses (or read-to-close),
keep-alive or ``Connection: close``, plain TCP or TLS. No redirects, no compression, no
proxies: a load generator should see exactly what the server answers.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

from simulator.http.errors import ErrorKind
from simulator.http.transport import (
    MAX_KEPT_BODY,
    Request,
    Response,
    Transport,
    body_size,
    failure,
    keep_body,
    parse_set_cookie,
    waits,
)

_MAX_HEAD = 64 * 1024
#: Go's net/http (so k6) reads a chunked body's trailers only when their CRLF CRLF comes
#: within this many bytes (its connection's read buffer)
_MAX_TRAILER = 4096
_HEX = b"0123456789abcdefABCDEF"
_BUFFERS = (bytes, memoryview)  # a tuple: ``bytes | memoryview`` builds a union per call


#: Header names are looked up after a "\n": a line ends in CRLF or in a bare LF (both read by
#: Go's net/http, so k6), in any mix: a head with a bare-LF status line and CRLF header lines
#: ends at a CRLF blank line, and a "\r\n" lookup missed its Content-Length (the body was then
#: read to the close: a timeout on a kept-alive connection). The value is stripped of the "\r".
_LENGTH = b"\ncontent-length:"
#: The largest Content-Length Go's net/http (so k6) takes: an int64
_MAX_LENGTH = 2**63 - 1


def _header_value(lower_head: bytes, needle: bytes) -> bytes | None:
    """The (stripped) value of the first header in a lower-cased response head whose line
    starts with ``needle`` (``b"\nname:"``, a constant: no concatenation per reply)."""
    i = lower_head.find(needle)
    if i < 0:
        return None
    start = i + len(needle)
    end = lower_head.find(b"\n", start)
    return lower_head[start : end if end >= 0 else len(lower_head)].strip()


def _header_lines(head: bytes) -> list[tuple[str, str]]:
    out = []
    for line in head.decode("latin-1").split("\n")[1:]:  # CRLF or bare LF; strip() takes "\r"
        k, sep, v = line.partition(":")
        if sep:
            out.append((k.strip().lower(), v.strip()))
    return out


class LazyHeaders(Mapping[str, str]):
    """Response headers, lower-case keys, parsed from the raw head only when first read."""

    __slots__ = ("_raw", "_map")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    def _m(self) -> dict[str, str]:
        if self._map is None:
            self._map = dict(_header_lines(self._raw))
        return self._map

    def __getitem__(self, key: str) -> str:
        return self._m()[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._m())

    def __len__(self) -> int:
        return len(self._m())


class _Reply:
    __slots__ = ("status", "raw_head", "cookies", "body", "cut", "first_byte", "done")

    def __init__(self) -> None:
        self.status = 0
        self.raw_head = b""
        self.cookies: list[str] | tuple[()] = ()  # a list only when the head sets cookies
        self.body = b""
        self.cut = 0  # body bytes read past MAX_KEPT_BODY and dropped
        self.first_byte = 0.0
        self.done = 0.0


class _Conn(asyncio.Protocol):
    """One TCP connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        # called once with the reply or the kind of failure that ended the exchange
        self.on_reply: Callable[[_Reply | ErrorKind], None] | None = None
        self.reply: _Reply | None = None
        # body bytes expected; -1 reading head; -2 chunked; -3 until close; -4 a length past
        # MAX_KEPT_BODY (``left`` still to come, the start kept in ``kept``)
        self.need = -1
        self.left = 0
        self.kept = bytearray()
        # chunked: data bytes left in the chunk (> 0); -1 a size line next; -2 the CRLF after
        # a chunk's data; -3 the trailers. Parsed as bytes come, each byte once.
        self.chunk = -1
        self.keep = True
        self.closed = False
        self.lost: ErrorKind = ErrorKind.CLOSED  # how the peer ended it, once closed
        self.received = 0
        self.unsent = False  # request bytes still in the transport's buffer (pause_writing)
        self.drained = 0.0  # when the buffer last emptied after a pause (resume_writing)

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.unsent = True

    def resume_writing(self) -> None:
        self.unsent = False
        self.drained = time.perf_counter()

    def deliver(self, result: _Reply | ErrorKind) -> None:
        cb, self.on_reply = self.on_reply, None
        if cb is not None:
            cb(result)

    def fail(self, kind: ErrorKind) -> None:
        """End the exchange with ``kind`` and close the connection (timeouts, bad responses)."""
        self.keep = False
        self.deliver(kind)
        if self.transport is not None:  # unsent bytes are dropped, never waited for (_drop)
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = ErrorKind.RESET if isinstance(exc, ConnectionResetError) else ErrorKind.CLOSED
        if self.on_reply is not None:
            if self.need == -3 and self.reply is not None:  # body delimited by close
                self.reply.body = bytes(self.buf)  # at most MAX_KEPT_BODY (_parse)
                self.reply.done = time.perf_counter()
                self.keep = False
                self.deliver(self.reply)
            elif self.reply is not None and self.reply.status:  # head read, body cut short
                self.deliver(ErrorKind.TRUNCATED)
            else:
                self.deliver(self.lost)

    def data_received(self, data: bytes) -> None:
        if self.reply is None:
            if self.on_reply is None:  # unsolicited bytes on an idle connection: drop it
                self.keep = False
                if self.transport is not None:
                    self.transport.close()
                return
            self.reply = _Reply()
            self.reply.first_byte = time.perf_counter()
        self.received += len(data)
        try:
            if self.need == -1 and not self.buf:
                # The usual case: the whole head, most often the whole response, in one read:
                # sliced from ``data`` itself, not copied through the buffer.
                # A CRLF blank line after a CRLF line; one after a bare-LF line (``end`` not
                # "\r"), or a bare blank line before it, leaves the head to _parse's rule
                end = data.find(b"\n\r\n") - 1
                if end >= 0 and data[end] == 13 and data.find(b"\n\n", 0, end) < 0:
                    self._take_head(data[:end])
                    need = self.need
                    if need >= 0 and len(data) - end - 4 == need:
                        assert self.reply is not None
                        self.reply.body = data[end + 4 :]
                        self._finish()
                        return
                    data = data[end + 4 :]  # a body still to come, chunked, or an interim reply
            self.buf += data
            self._parse()
        except _BadResponse:
            self.fail(ErrorKind.BAD_RESPONSE)

    # -- parsing -------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self.buf
        while self.need == -1:  # a loop: an interim (1xx) reply is followed by the real one
            # The head ends at its first empty line, "\r\n" or a bare "\n", whatever ended the
            # line before it (Go's net/http, so k6, and aiohttp): lines ended by a bare LF come
            # from small embedded servers, in any mix with CRLF ones. Waiting for "\r\n\r\n"
            # or "\n\n" only, a bare-LF line then a CRLF blank line never ended (a timeout).
            crlf = buf.find(b"\n\r\n")
            bare = buf.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(buf))
            if bare >= 0:
                end, blank = bare, 2
            elif crlf >= 0:
                end, blank = crlf, 3
            else:
                if len(buf) > _MAX_HEAD:
                    raise _BadResponse("response head too large")
                if _no_status_line(buf):
                    raise _BadResponse(f"bad status line {bytes(buf[:40])!r}")
                return
            head = bytes(buf[:end])
            del buf[: end + blank]
            if head[-1:] == b"\r":
                head = head[:-1]
            if head.count(b"\n") != head.count(b"\r\n"):  # a bare LF: CRLF lines throughout
                head = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            self._take_head(head)
        reply = self.reply
        assert reply is not None
        if self.need >= 0:
            if len(buf) < self.need:
                return
            reply.body = bytes(buf[: self.need])
            del buf[: self.need]
            self._finish()
        elif self.need == -2:
            self._parse_chunked()
        elif self.need == -4:
            take = min(len(buf), self.left)
            with memoryview(buf) as view:  # released before the buffer is cut
                reply.cut += keep_body(self.kept, view[:take])
            del buf[:take]
            self.left -= take
            if not self.left:
                self._finish_kept()
        elif self.need == -3 and len(buf) > MAX_KEPT_BODY:  # the rest is dropped as it comes
            reply.cut += len(buf) - MAX_KEPT_BODY
            del buf[MAX_KEPT_BODY:]

    def _take_head(self, head: bytes) -> None:
        """A response head (without its blank line): status, framing, keep-alive, cookies."""
        reply = self.reply
        assert reply is not None
        # Only what framing needs is parsed here; the full header map is built lazily,
        # on first use, since most requests never look at it.
        code = head[9:12]
        if (
            head[:5] != b"HTTP/"
            or not code.isdigit()
            or head[12:13] not in (b" ", b"\r", b"\n", b"")
        ):
            raise _BadResponse(f"bad status line {head[:40]!r}")
        reply.status = int(code)
        reply.raw_head = head
        lower = head.lower()
        if b"\nset-cookie:" in lower:
            reply.cookies = [v for k, v in _header_lines(head) if k == "set-cookie"]
        if head[5:8] == b"1.0" or (
            b"\nconnection:" in lower and _header_value(lower, b"\nconnection:") == b"close"
        ):
            self.keep = False
        if reply.status == 101:
            # No request asks to switch protocols: Go's net/http hands 101 back as the answer
            # and k6 throws 'unsupported response status: 101' at once; taken for an interim
            # reply it waited for another that never came (the timeout, on a switched connection)
            raise _BadResponse("unsupported response status: 101")
        if 100 <= reply.status < 200:  # interim response: wait for the real one (need stays -1)
            self.reply = _Reply()
            self.reply.first_byte = reply.first_byte
            return
        length = _header_value(lower, _LENGTH)
        if b"\ntransfer-encoding:" in lower and b"chunked" in (
            _header_value(lower, b"\ntransfer-encoding:") or b""
        ):
            self.need = -2
            self.chunk = -1
        elif length is not None:
            # ASCII digits only (int() takes "+2" and "1_0"; a negative one would read as one
            # of the framing states above), and no second Content-Length that disagrees: Go's
            # net/http (so k6) and aiohttp refuse both; the first one alone counted ok. Nor one
            # past Go's int64 (strconv.ParseUint(cl, 10, 63)): k6 'bad Content-Length', where
            # this waited for the body and failed it as 'truncated' (int() of 4,301 digits raises)
            again = lower.find(_LENGTH, lower.find(_LENGTH) + 2)
            digits = length.lstrip(b"0")
            if (
                not length.isdigit()
                or len(digits) > 19
                or (digits and int(digits) > _MAX_LENGTH)
                or (again >= 0 and _header_value(lower[again:], _LENGTH) != length)
            ):
                raise _BadResponse("bad Content-Length")
            self.need = int(digits) if digits else 0
            if self.need > MAX_KEPT_BODY:  # kept in part as it comes (_parse)
                self.need, self.left = -4, self.need
        elif reply.status in (204, 304) or self._head_request:
            self.need = 0
        else:
            self.need = -3
            self.keep = False

    _head_request = False

    def _parse_chunked(self) -> None:
        """Chunks as they come, each byte looked at once (before, the body was parsed again
        from its first chunk on every read: an endless body stalled the loop), the data kept
        up to MAX_KEPT_BODY; sizes are hex digits only, as Go's net/http reads them."""
        buf = self.buf
        reply = self.reply
        assert reply is not None
        while True:
            if self.chunk > 0:  # a chunk's data
                take = min(len(buf), self.chunk)
                if not take:
                    return
                with memoryview(buf) as view:  # released before the buffer is cut
                    reply.cut += keep_body(self.kept, view[:take])
                del buf[:take]
                self.chunk -= take
                if self.chunk:
                    return
                self.chunk = -2
            if self.chunk == -2:  # the CRLF ending a chunk's data
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise _BadResponse("bad chunk end")
                del buf[:2]
                self.chunk = -1
            if self.chunk == -1:  # a size line
                # Go's net/http (so k6) reads it to its LF, which a CR must come just before,
                # with no other CR in it (CVE-2025-22871: a bare LF is refused in chunk lines,
                # unlike in a head); trailing blanks dropped, then the extension. Looking for a
                # CRLF instead, a bare-LF size line waited for one (a timeout) and "2\r\r\n",
                # " 2" or "2 ;x" were read as 2 where k6 fails the request at once.
                eol = buf.find(b"\n")
                if eol < 0:
                    if len(buf) > _MAX_HEAD:
                        raise _BadResponse("chunk size line too long")
                    return
                if eol == 0 or buf.find(b"\r", 0, eol) != eol - 1:
                    raise _BadResponse("chunk line not ended by one CRLF")
                size_text = bytes(buf[: eol - 1]).rstrip(b" \t").split(b";", 1)[0]
                if not 0 < len(size_text) <= 16 or size_text.strip(_HEX):
                    raise _BadResponse("bad chunk size")
                del buf[: eol + 1]
                self.chunk = int(size_text, 16) or -3
                continue
            # the trailers: none (a CRLF), or header lines
            if buf[:2] == b"\r\n":
                del buf[:2]
            elif not self._take_trailers(buf):
                return
            self._finish_kept()
            return

    @staticmethod
    def _take_trailers(buf: bytearray) -> bool:
        """Cuts a chunked body's trailer lines from ``buf``; False while they are still coming.

        Go's net/http (so k6) reads them only once a CRLF CRLF is within their first
        :data:`_MAX_TRAILER` bytes (more: 'suspiciously long trailer'), then as header lines up
        to the first empty line, whatever ends the lines (bytes left after it close the
        connection, as here): a trailer ended by a bare-LF blank line times out in k6 too."""
        if buf.find(b"\r\n\r\n", 0, _MAX_TRAILER) < 0:
            if len(buf) >= _MAX_TRAILER:
                raise _BadResponse("suspiciously long trailer after chunked body")
            return False
        if buf[0] in b" \t":
            raise _BadResponse("malformed trailer initial line")
        start = 0
        while True:
            eol = buf.find(b"\n", start)  # one is there: the CRLF CRLF
            line = buf[start : eol - 1 if buf[eol - 1 : eol] == b"\r" else eol]
            start = eol + 1
            if not line:
                del buf[:start]
                return True
            if line[0] not in b" \t" and b":" not in line:  # not a folded line
                raise _BadResponse("malformed trailer line: missing colon")

    def _finish_kept(self) -> None:
        """The end of a body read into ``kept`` (chunked, or a length past the cap)."""
        assert self.reply is not None
        self.reply.body = bytes(self.kept)
        self.kept = bytearray()
        self._finish()

    def _finish(self) -> None:
        reply = self.reply
        assert reply is not None
        reply.done = time.perf_counter()
        self.reply = None
        self.need = -1
        if self.buf:
            # Bytes past the reply's framing (no request is pipelined): reused, they would be
            # read as the next request's reply and fail it for this one's fault. Go closes such
            # a connection too ("Unsolicited response received on idle HTTP channel").
            self.keep = False
        self.deliver(reply)


class _BadResponse(Exception):
    pass


def _no_status_line(buf: bytearray) -> bool:
    """A head still coming that can no longer be a response: it does not start ``HTTP/``, or
    its first line is complete and no status line (:meth:`_Conn._take_head`'s rule). Go's
    net/http (so k6) fails it on that first line; waiting for the blank line that ends a head
    held a target answering garbage on an open connection to the request timeout."""
    if not b"HTTP/".startswith(bytes(buf[:5])):
        return True
    eol = buf.find(b"\n")
    if eol < 0:
        return False
    line = bytes(buf[:eol])
    return not line[9:12].isdigit() or line[12:13] not in (b" ", b"\r", b"")


#: Methods a client may replay on a fresh connection when a reused one turns out dead before
#: any answer (RFC 9110 idempotent methods; Go's net/http, hence k6, does the same). A POST is
#: never replayed: the server may have processed it, and a silent re-send is a duplicate upload.
_REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


#: Dials a transport has under way at once, while no request has waited long
#: (:data:`GROW_AFTER`). A request that finds no idle connection waits for whichever comes
#: first: one another request frees, or one a dial opens (as Go's net/http, so k6, does: a dial
#: started for a request that was then served by a freed connection goes to the pool). Capped
#: in flight, not per loop turn: a connect costs the generator ~150 µs of CPU against a 1 KB
#: request's ~60 µs, so a loop that fell behind and dialled for each waiting request fell
#: further behind and dialled more. With 32 a turn and then half the pool a turn, at 14,000/s
#: (1 KB, two workers, nginx, FIFO 20) 373-2,605 connections were opened where 113-213 served
#: capped, and start lag p99 was over 5 ms in 4 runs of 6 against none of 6.
DIALS_IN_FLIGHT = 8
#: ... but once the longest-waiting request has waited this long, the pool is short for the
#: target (its replies hold the connections, not the generator's loop, which frees them within
#: a turn), and up to :data:`DIAL_GROWTH` of the connections open may be under way at once: with
#: 8, a pool short for a slowed nginx at 20,000/s (32 KB) grew 8 a connect and dropped 3.5-7.3 %
#: of the arrivals in 5 runs of 8 (busy machine) where growing by half the pool dropped < 2.4 %.
GROW_AFTER = 0.050
DIAL_GROWTH = 0.5


#: The longest :meth:`FastTransport.start` waits for its warm connections: a target that
#: drops connects (a full listen backlog) would otherwise hold the run's start for the whole
#: connect timeout; a worker's 300 connects to nginx on loopback completed within 4 ms of each other.
WARM_WAIT = 2.0


class FastTransport:
    """Keep-alive pool of :class:`_Conn` to one origin."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        warm: int = 0,
    ) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.prefix = parts.path.rstrip("/")  # a target like http://host/api/v2 keeps /api/v2
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        default_port = (parts.scheme == "https" and self.port == 443) or self.port == 80
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.timeout = timeout
        self.warm = warm  # connections the first start() opens, before the schedule (dial_ahead)
        self._idle: list[_Conn] = []
        self._all: set[_Conn] = set()
        self.connects = 0
        # Requests that found no idle connection, in arrival order: each takes whichever comes
        # first, a connection another request frees or one a dial opens (_pump, _hand).
        self._waiting: deque[_Exchange] = deque()
        self._dialing = 0  # dials under way (their tasks: _connecting, for close())
        # One sweeper enforces every in-flight deadline: cheaper than a timer per request.
        self._deadlines: dict[_Conn, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # held: no lookup per request

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def _sweep(self) -> None:
        tick = min(0.1, self.timeout / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.perf_counter()
            for conn in [c for c, d in self._deadlines.items() if d <= now]:
                self._deadlines.pop(conn, None)
                conn.fail(ErrorKind.TIMEOUT)
            if self._waiting:
                self._expire(now - self.timeout)

    def _expire(self, before: float) -> None:
        """Fail, as a connect timeout, each request waiting for a connection since ``before``:
        with dials capped, a target that never completes a connect would otherwise leave the
        requests behind the cap waiting one connect timeout per :data:`DIALS_IN_FLIGHT`."""
        late = [ex for ex in self._waiting if ex.queued <= before]
        if late:
            self._waiting = deque(ex for ex in self._waiting if ex.queued > before)
            for ex in late:
                ex.finish_error(ErrorKind.CONNECT_TIMEOUT)

    async def start(self) -> None:
        """Open :attr:`warm` keep-alive connections and wait for them, at most
        :data:`WARM_WAIT` (a failed one is left to the requests: they dial and report the
        target's error as usual; one still under way then serves the first request that
        waits). Once: a worker starts it on the Warm word and its run again after the go, which
        must neither dial them again nor wait for them a second time."""
        self._loop = asyncio.get_running_loop()
        warm, self.warm = self.warm, 0
        if warm > 0:
            self.dial_ahead(warm)
            if self._connecting:
                await asyncio.wait(list(self._connecting), timeout=WARM_WAIT)

    def dial_ahead(self, count: int) -> None:
        """Start dialling now, uncapped, until ``count`` connections are open or being opened.

        For before the schedule's start: with none open, the first arrivals (a burst, if the
        loop starts behind) each waited for a dial of its own, the dials (~150 µs of CPU
        each, 1 KB to nginx) made the loop's turns longer, so more arrivals came due at once
        and needed more connections: 500-1,400 per worker in the first 0.5 s at 11,000-12,000/s
        with ``auto`` workers, its starts up to 120 ms late, where ~50 serve the rate after.
        A dial finishing while a request waits serves it (:meth:`_dial`), else the pool."""
        self._loop = asyncio.get_running_loop()
        for _ in range(count - len(self._all) - self._dialing):
            self._start_dial()

    def _start_dial(self) -> None:
        self._dialing += 1
        task = self.loop.create_task(self._dial())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self) -> _Conn:
        tr, conn = await self.loop.create_connection(_Conn, self.host, self.port, ssl=self.ssl)
        # Told of any byte the kernel did not take at once (pause_writing), and of when the
        # last one went (resume_writing): a body the server is slow to read is sending time,
        # as k6's, not waiting. A write the kernel takes whole (the usual case) calls neither.
        tr.set_write_buffer_limits(high=0)
        self.connects += 1
        self._all.add(conn)
        return conn

    def _head(self, req: Request, size: int) -> bytes:
        lines = [f"{k}: {v}\r\n" for k, v in req.headers.items()]
        lines.insert(
            0, f"{req.method} {self.prefix}{req.path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
        )
        if req.cookies:
            lines.append(
                "Cookie: " + "; ".join(f"{k}={v}" for k, v in req.cookies.items()) + "\r\n"
            )
        if size or req.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {size}\r\n")
        if not req.keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("User-Agent: scfleet/0.1\r\n\r\n")
        return "".join(lines).encode("latin-1")

    async def send(self, req: Request) -> Response:
        fut: asyncio.Future[Response] = self.loop.create_future()

        def done(resp: Response) -> None:
            if not fut.done():  # the awaiting task may have been cancelled
                fut.set_result(resp)

        self.submit(req, done)
        return await fut

    def submit(self, req: Request, done: Callable[[Response], None]) -> None:
        """Start ``req`` now; ``done(response)`` is called once, from the event loop.

        The request path of the load generator: on a pooled connection the request is written
        before this returns and the reply is handed over from ``data_received`` — no task, no
        future, no extra trips round the event loop per request.
        """
        body = req.body
        parts: list[bytes | memoryview]
        if body is None:
            parts = []
            size = 0
        elif isinstance(body, _BUFFERS):
            parts = [body]
            size = body.nbytes if isinstance(body, memoryview) else len(body)
        else:
            parts = list(body)
            size = body_size(parts)
        ex = _Exchange(self, req, self._head(req, size), parts, size, done)
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                ex.begin(conn, reused=True)
                return
        self.connect_then(ex)

    def connect_then(self, ex: _Exchange, *, first: bool = False) -> None:
        """Queue ``ex`` for a connection (``first``: ahead of the others, a request being
        replayed) and dial for it if the dials under way allow (:meth:`_pump`)."""
        ex.queued = time.perf_counter()
        if first:
            self._waiting.appendleft(ex)
        else:
            self._waiting.append(ex)
        if self._sweeper is None:  # its wait ends by the timeout too (_expire)
            self._sweeper = self.loop.create_task(self._sweep())
        self._pump()

    def _pump(self) -> None:
        """Dial while more requests wait than dials are under way, at most
        :data:`DIALS_IN_FLIGHT` under way (or :data:`DIAL_GROWTH` of the pool once a request
        waited :data:`GROW_AFTER`); the rest are dialled as dials end (:meth:`_dial`), unless a
        freed connection serves them first."""
        waiting = self._waiting
        if len(waiting) <= self._dialing:
            return
        cap = DIALS_IN_FLIGHT
        if time.perf_counter() - waiting[0].queued > GROW_AFTER:
            cap = max(cap, int(len(self._all) * DIAL_GROWTH))
        while len(waiting) > self._dialing < cap:
            self._start_dial()

    def _hand(self, conn: _Conn) -> None:
        """A connection free for the next request: the longest-waiting one, else the pool."""
        if self._waiting:
            self._waiting.popleft().begin(conn, reused=True)
        else:
            self._idle.append(conn)

    async def _dial(self) -> None:
        """One new connection, for whichever request waits longest when it is made (or the
        pool, if a freed connection served them all); a failed dial fails the longest-waiting
        request with its cause (a refused connect still fails every request that needed one)."""
        t0 = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the connection and drops a
            # cancel (close() at the run's end) that came in the turn the connect completed, and
            # the request went out after the stop. Cancelled or timed out, create_connection
            # closes its half-made socket (tests/simulator/test_connect_cancel.py).
            async with asyncio.timeout(self.timeout):
                conn = await self._connect()
        except Exception as exc:  # noqa: BLE001 - every failure is the request's outcome
            self._dialing -= 1
            if self._waiting:
                self._waiting.popleft().finish_error(classify_connect(exc))
                self._pump()  # its slot: the next dial, for the next request waiting
            return
        except BaseException:  # cancelled (close()): no request takes it
            self._dialing -= 1
            raise
        self._dialing -= 1
        if self._waiting:
            ex = self._waiting.popleft()
            ex.dialled = t0  # what of it was connecting, what blocked: transport.waits
            ex.begin(conn, reused=False)
            self._pump()
        else:
            self._idle.append(conn)

    def _drop(self, conn: _Conn) -> None:
        self._all.discard(conn)
        tr = conn.transport
        if tr is not None and not conn.closed:
            # A graceful close waits for unsent bytes to drain, which a peer that stopped
            # reading never lets happen: the socket would outlive its request (and the
            # open-file need counts one per request in flight, simulator/run/limits.py).
            if tr.get_write_buffer_size():
                tr.abort()
            else:
                tr.close()

    async def close(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for conn in list(self._all):
            self._drop(conn)
        self._idle.clear()
        self._waiting.clear()  # as a cancelled dial leaves its request: never answered
        await asyncio.sleep(0)


class _Exchange:
    """One request on its way: written on a connection, finished by the connection's reply."""

    __slots__ = (
        "tr",
        "req",
        "head",
        "parts",
        "size",
        "done",
        "started",
        "dialled",
        "queued",
        "reused",
        "sent_at",
        "connected",
        "conn",
    )

    def __init__(
        self,
        tr: FastTransport,
        req: Request,
        head: bytes,
        parts: list[bytes | memoryview],
        size: int,
        done: Callable[[Response], None],
    ) -> None:
        self.tr = tr
        self.req = req
        self.head = head
        self.parts = parts
        self.size = size
        self.done = done
        self.started = time.perf_counter()
        self.dialled = 0.0  # when the dial of the connection it got began (0: reused)
        self.queued = 0.0  # when it last began to wait for a connection (FastTransport._expire)
        self.reused = False
        self.sent_at = self.connected = 0.0
        self.conn: _Conn | None = None

    def begin(self, conn: _Conn, *, reused: bool) -> None:
        self.conn = conn
        self.reused = reused
        conn.received = 0
        conn._head_request = self.req.method == "HEAD"
        conn.on_reply = self.on_reply
        tr = conn.transport
        self.connected = time.perf_counter()
        if conn.closed or tr is None or tr.is_closing():
            # The peer closed the connection between connect and now (a server that accepts
            # and closes): nothing will ever call back, so end the exchange here.
            conn.deliver(conn.lost)
            return
        try:
            if self.parts:
                tr.writelines([self.head, *self.parts])
            else:
                tr.write(self.head)
        except Exception:  # noqa: BLE001 - e.g. a TLS transport torn down under us
            conn.fail(ErrorKind.BROKEN_PIPE)
            return
        self.sent_at = time.perf_counter()
        self.req.written = len(self.head) + self.size
        t = self.tr
        t._deadlines[conn] = self.sent_at + t.timeout
        if t._sweeper is None:
            t._sweeper = t.loop.create_task(t._sweep())

    def on_reply(self, result: _Reply | ErrorKind) -> None:
        t, conn = self.tr, self.conn
        assert conn is not None
        t._deadlines.pop(conn, None)
        if isinstance(result, ErrorKind):
            t._drop(conn)
            if (
                self.reused
                and result in (ErrorKind.CLOSED, ErrorKind.RESET)
                and not conn.received
                and self.req.method in _REPLAYABLE
            ):
                self.reused = False  # stale keep-alive connection: once more on a fresh one
                t.connect_then(self, first=True)
                return
            self.finish_error(result)
            return
        received = conn.received  # before the connection goes to the next request
        sent = self.sent_until(conn, result.first_byte)
        if conn.keep and self.req.keep_alive and not conn.closed:
            t._hand(conn)
        else:
            t._drop(conn)
        jar, cleared = parse_set_cookie(result.cookies) if result.cookies else ({}, ())
        blocked, connecting = waits(self.started, self.dialled, self.connected)
        # positional on the hot path (keywords cost ~1 µs per request): Response's field
        # order, named on each line
        resp = Response(
            result.status,  # status
            result.body,  # body
            LazyHeaders(result.raw_head),  # headers
            None,  # error
            self.started,  # started
            result.first_byte,  # headers_at
            result.done,  # ended
            len(self.head) + self.size,  # sent
            received,  # received
            jar,  # set_cookies
            cleared,  # cleared_cookies
            connecting,  # connecting
            sent - self.connected,  # sending
            blocked,  # blocked
        )
        if result.cut:
            resp.body_cut = result.cut
        self.done(resp)

    def sent_until(self, conn: _Conn, first_byte: float) -> float:
        """When the request's last byte left: its write, or the drain of what the kernel did
        not take at once; an answer that came first (an early 413) ends the sending."""
        if conn.unsent:
            return first_byte
        if conn.drained > self.sent_at:
            return min(conn.drained, first_byte)
        return self.sent_at

    def finish_error(self, kind: ErrorKind) -> None:
        resp = failure(kind, self.started, time.perf_counter())
        # k6 counts bytes on the connection, whatever became of the request: what it wrote and
        # what it read before the failure (a cut body, a garbled head)
        resp.sent = self.req.written
        if self.conn is not None:
            resp.received = self.conn.received
        # if it got a connection, its wait for one is not its duration
        resp.blocked, resp.connecting = waits(self.started, self.dialled, self.connected)
        self.done(resp)


def classify_connect(exc: BaseException) -> ErrorKind:
    """A failed connect in the shared vocabulary (:class:`~simulator.http.transport.ErrorKind`)."""
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.TLS
    if isinstance(exc, ConnectionRefusedError):
        return ErrorKind.REFUSED
    if isinstance(exc, ConnectionResetError):
        return ErrorKind.RESET  # k6 gives ECONNRESET 1220 whatever the operation
    if isinstance(exc, TimeoutError):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, OSError):
        return ErrorKind.CONNECT_FAILED
    return ErrorKind.OTHER


def make_transport(base_url: str, timeout: float, kind: str = "fast", warm: int = 0) -> Transport:
    """The transport for a target: the fast client, or aiohttp when asked for. ``warm``:
    keep-alive connections the fast client opens in ``start()``, before the schedule
    (:func:`simulator.run.devices.warm_connections`)."""
    from simulator.http.aio import AiohttpTransport

    if kind == "aiohttp":
        return AiohttpTransport(base_url, timeout=timeout)
    return FastTransport(base_url, timeout=timeout, warm=warm)
