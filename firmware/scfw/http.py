"""HTTP/1.1 client of the firmware's own, on asyncio streams, with keep-alive.

MicroPython's `requests` and `aiohttp` close the connection after every request; a sensor that
uploads every second cannot afford a TCP (or TLS) handshake each time. The framing (`build_head`,
`ResponseParser`) is sans-I/O so it is tested byte by byte under MicroPython; `Client` does the I/O
and handles errors where they happen: on MicroPython a refused connect only shows at the first
drain()/read(), so every stream call sits inside the same try.
"""

import asyncio

MAX_HEAD = 8192
KEEP_BODY = 256  # response body bytes kept (the rest is counted and discarded)
SLICE = 2048  # request body bytes per write(); each is drained before the next (see mem.py)


# the response headers the client reads (the rest are skipped, not stored)
KEEP_HEADERS = (b"connection", b"content-length", b"content-type", b"transfer-encoding")
KEEP_NAME = 17  # the longest of them


class HttpError(Exception):
    pass


def _text(b):
    """Header text as str: bytes outside ASCII (obs-text, RFC 9110 5.5) become '?'."""
    try:
        return b.decode()
    except UnicodeError:
        return bytes(c if c < 128 else 63 for c in b).decode()


async def within(coro, timeout_s, release=None):
    """`await coro`, or asyncio.TimeoutError after `timeout_s`: asyncio.wait_for without its races.

    When a cancel or the timeout meets coro's result within a few loop turns, CPython 3.11's
    wait_for returns the result and drops the cancel (a stopped run's sender went on), and
    MicroPython's drops the result (a connection made was never closed). Here a cancel is always
    raised, a result that comes after the timeout is still returned, and one nobody will receive
    goes to `await release(result)`. The caller waits on an Event, never on the task (MicroPython
    forwards a cancel of a task's waiter to that task, so it could not be told from the timeout's).
    """
    st = [0, None, False, asyncio.Event()]  # [0 running | 1 returned | 2 raised, value, abandoned]
    done = st[3]
    task = asyncio.create_task(_within_run(coro, st, release))
    timer = asyncio.create_task(_within_expire(timeout_s, done))
    try:
        await done.wait()
        if not st[0]:  # the timeout: cancel the work, which may still finish first
            task.cancel()
            done.clear()
            await done.wait()
            if st[0] != 1:
                raise asyncio.TimeoutError
        if st[0] == 2:
            raise st[1]
        return st[1]
    except BaseException:
        st[2] = True
        task.cancel()
        if st[0] == 1 and release is not None:  # returned before the cancel came: unreceived
            v, st[1] = st[1], None
            await release(v)
        raise
    finally:
        timer.cancel()


async def _within_run(coro, st, release):
    # module-level coroutines, not closures: less garbage per request (tests/firmware/test_heap.py)
    try:
        v = await coro
    except BaseException as e:  # noqa: BLE001 - within() raises it
        st[0], st[1] = 2, e
    else:
        st[0], st[1] = 1, v
        if st[2] and release is not None:
            await release(v)
    st[3].set()


async def _within_expire(timeout_s, done):
    await asyncio.sleep(timeout_s)
    done.set()


async def close_stream(w):
    """Close an asyncio stream writer quietly (MicroPython's close() is a no-op: wait_closed
    closes the socket)."""
    try:
        w.close()
        await w.wait_closed()
    except Exception:
        pass


async def _close_pair(rw):
    await close_stream(rw[1])


def parse_url(url):
    """-> (scheme, host, port, path). Only http and https; host may be an IP or a name."""
    if "://" not in url:
        raise HttpError("URL has no scheme: %s" % url)
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise HttpError("unsupported scheme: %s" % scheme)
    slash = rest.find("/")
    if slash < 0:
        hostport, path = rest, "/"
    else:
        hostport, path = rest[:slash], rest[slash:]
    port = 443 if scheme == "https" else 80
    if hostport.startswith("["):  # [::1]:8080
        end = hostport.find("]")
        host = hostport[1:end]
        tail = hostport[end + 1 :]
        if end < 0 or (tail and not tail.startswith(":")):
            raise HttpError("bad IPv6 host: %s" % url)
        if tail:
            port = _port(tail[1:], url)
    elif ":" in hostport:
        host, p = hostport.rsplit(":", 1)
        port = _port(p, url)
    else:
        host = hostport
    if not host:
        raise HttpError("URL has no host: %s" % url)
    return scheme, host, port, path


def _port(text, url):
    if not text or not text.isdigit() or not 0 < int(text) < 65536:
        raise HttpError("URL port must be 1..65535: %s" % url)
    return int(text)


def build_head(method, host, port, path, headers, body_len, keep_alive=True):
    """Request line and headers as bytes. `headers` is a list of (name, value) pairs."""
    default_port = port == 80 or port == 443
    hosthdr = host if default_port else "%s:%d" % (host, port)
    if ":" in host and not default_port:
        hosthdr = "[%s]:%d" % (host, port)
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + hosthdr]
    for name, value in headers:
        lines.append("%s: %s" % (name, value))
    lines.append("Content-Length: %d" % body_len)
    lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class ResponseParser:
    """Feed response bytes in any fragmentation; `done` when one full response was read.

    Handles Content-Length, chunked transfer coding (with trailers) and read-until-close bodies.
    Bytes after the response (pipelining, garbage) are kept in `extra`.
    """

    def __init__(self, head_request=False):
        self.head_request = head_request
        self.buf = bytearray()
        # 0 status line, 8 header lines, 1 length body, 2 chunk size, 3 chunk data, 4 chunk CRLF,
        # 5 trailers, 6 until close, 7 done
        self.state = 0
        self.head_bytes = 0  # status and header lines read (interim responses included)
        self.status = 0
        self.reason = ""
        self.version = ""
        self.headers = {}
        self.body = bytearray()
        self.body_len = 0
        self.left = 0
        self.keep_alive = True
        self.extra = b""

    @property
    def done(self):
        return self.state == 7

    @property
    def duplicate(self):
        """The server's JSON answer says `"duplicate": true`: it already had this (device,
        sequence), from an attempt whose answer was lost, and stored nothing new."""
        b = self.body
        i = b.find(b'"duplicate"')
        while i >= 0:  # the key, not a value such as "status": "duplicate"
            j = i + 11
            while j < len(b) and b[j] in b" \t":
                j += 1
            if j < len(b) and b[j] == 58:  # ':'
                j += 1
                while j < len(b) and b[j] in b" \t":
                    j += 1
                return b[j : j + 4] == b"true"
            i = b.find(b'"duplicate"', j)
        return False

    def _drain_left(self):
        # Move up to ``left`` buffered bytes into the body; True once none are left.
        take = self.left if self.left < len(self.buf) else len(self.buf)
        if take:
            self._take_body(self.buf[:take])
            self.buf = self.buf[take:]
            self.left -= take
        return not self.left

    def _take_body(self, data):
        n = len(data)
        self.body_len += n
        room = KEEP_BODY - len(self.body)
        if room > 0:
            self.body.extend(data[:room])

    def _line(self):
        # A line ends at LF, after an optional CR: RFC 9112 2.2 lets a recipient take a bare LF.
        i = self.buf.find(b"\n")
        if i < 0:
            if len(self.buf) > MAX_HEAD:
                raise HttpError("response line too long")
            return None
        line = bytes(self.buf[: i - 1 if i and self.buf[i - 1] == 13 else i])
        self.buf = self.buf[i + 1 :]
        return line

    def feed(self, data):
        """Consume data; returns True once the response is complete."""
        if self.state == 7:
            self.extra += bytes(data)
            return True
        self.buf.extend(data)
        while True:
            st = self.state
            if st == 0 or st == 8:
                # The head a line at a time, in place: what is held is the unread rest of one
                # read, never the whole head (an 8 KB head of hundreds of proxy headers was
                # three 8 KB copies at once, more than a 110 KB board has in one piece).
                buf = self.buf
                pos = 0
                while self.state == 0 or self.state == 8:
                    i = buf.find(b"\n", pos)
                    if i < 0:
                        break
                    e = i - 1 if i > pos and buf[i - 1] == 13 else i  # a bare LF ends it too
                    self.head_bytes += i + 1 - pos
                    if self.head_bytes > MAX_HEAD:
                        raise HttpError("response head too long")
                    if self.state == 0:
                        self._status_line(bytes(buf[pos:e]))
                    elif e > pos:
                        self._header_line(buf, pos, e)
                    else:
                        self._end_head()
                    pos = i + 1
                if pos:
                    self.buf = buf[pos:]
                if self.state == 0 or self.state == 8:
                    if len(self.buf) > MAX_HEAD:
                        raise HttpError("response line too long")
                    return False
            elif st == 1:
                if not self._drain_left():
                    return False
                self.state = 7
            elif st == 2:
                line = self._line()
                if line is None:
                    return False
                size = line.split(b";", 1)[0].strip()
                try:
                    self.left = int(size, 16)
                except ValueError:
                    raise HttpError("bad chunk size")
                if self.left < 0:
                    raise HttpError("bad chunk size")
                self.state = 3 if self.left else 5
            elif st == 3:
                if not self._drain_left():
                    return False
                self.state = 4
            elif st == 4:
                if len(self.buf) < 2 and not (self.buf and self.buf[0] == 10):
                    return False
                if self.buf[0] == 10:  # a bare LF
                    self.buf = self.buf[1:]
                elif self.buf[:2] == b"\r\n":
                    self.buf = self.buf[2:]
                else:
                    raise HttpError("missing CRLF after chunk")
                self.state = 2
            elif st == 5:
                line = self._line()
                if line is None:
                    return False
                if not line:
                    self.state = 7
            elif st == 6:
                if self.buf:
                    self._take_body(self.buf)
                    self.buf = bytearray()
                return False
            else:
                self.extra = bytes(self.buf)
                self.buf = bytearray()
                return True

    def eof(self):
        """The peer closed: completes a read-until-close body, else the response is truncated."""
        if self.state == 6:
            self.state = 7
            return True
        if self.state == 7:
            return True
        raise HttpError(
            "connection closed mid-response" if self.status else "connection closed before response"
        )

    def _status_line(self, line):
        first = line.split(None, 2)
        if len(first) < 2 or not first[0].startswith(b"HTTP/1."):
            raise HttpError("bad status line")
        code = first[1]
        if len(code) != 3 or not code.isdigit():  # 3DIGIT: int() also takes "+20", "2_0"
            raise HttpError("bad status code")
        self.version = first[0].decode()
        self.status = int(code)
        self.reason = _text(first[2]) if len(first) > 2 else ""
        self.state = 8

    def _header_line(self, buf, a, e):
        # Only the headers in KEEP_HEADERS are kept, and a skipped one allocates nothing: a
        # dict of every header (an 8 KB head allows ~1,000) took more heap than a board has.
        c = buf.find(b":", a, e)
        if c < 0:
            raise HttpError("bad header line")
        if c - a <= KEEP_NAME and buf[a] | 32 in (99, 116):  # c..., t...: the rest are skipped
            name = bytes(buf[a:c]).strip().lower()
            if name in KEEP_HEADERS:
                self.headers[name.decode()] = _text(bytes(buf[c + 1 : e]).strip())

    def _end_head(self):
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in conn
        else:
            self.keep_alive = "close" not in conn
        if self.status < 200 and self.status != 101:
            # 1xx interim response (100 Continue): the real one follows.
            self.headers = {}
            self.status = 0
            self.state = 0
            return
        te = self.headers.get("transfer-encoding", "").lower()
        if self.head_request or self.status in (204, 304):
            self.state = 7
        elif "chunked" in te:
            self.state = 2
        elif "content-length" in self.headers:
            try:
                self.left = int(self.headers["content-length"])
            except ValueError:
                raise HttpError("bad Content-Length")
            if self.left < 0:
                raise HttpError("bad Content-Length")
            self.state = 1
        else:
            self.state = 6
            self.keep_alive = False


class Client:
    """One connection to one target, reused while the server keeps it open.

    `open_connection(host, port, ssl)` comes from the HAL (asyncio.open_connection on both Pythons),
    so an emulator can route or fault it. `connects` counts TCP connections made (keep-alive check).
    """

    def __init__(self, url, open_connection, keep_alive=True, timeout_s=10.0, rbuf=None):
        self.scheme, self.host, self.port, self.path = parse_url(url)
        self.rbuf = rbuf if rbuf is not None else bytearray(512)  # kept: reads never allocate
        self.open_connection = open_connection
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.reader = None
        self.writer = None
        self.connects = 0

    async def close(self):
        w = self.writer
        self.reader = self.writer = None
        if w is not None:
            await close_stream(w)

    async def _connect(self):
        ssl = True if self.scheme == "https" else None
        coro = self.open_connection(self.host, self.port, ssl)
        # within, not wait_for: a connection made as the request is cancelled is closed
        self.reader, self.writer = await within(coro, self.timeout_s, _close_pair)
        self.connects += 1

    async def _exchange(self, head, parts):
        # The body goes out in SLICE-byte writes, each drained before the next: MicroPython's
        # StreamWriter.write copies whatever the socket did not take into one new object, and an
        # ESP32's TCP send buffer takes ~5.7 KB, so one 32 KB write would allocate ~26 KB.
        w = self.writer
        w.write(head)
        for p in parts:
            mv = memoryview(p)
            n = len(mv)
            off = 0
            while off < n:
                w.write(mv[off : off + SLICE])
                off += SLICE
                await w.drain()
        if not parts:
            await w.drain()
        parser = ResponseParser()
        got = False
        rbuf = self.rbuf
        readinto = getattr(self.reader, "readinto", None)  # MicroPython; CPython has read()
        while True:
            if readinto is not None:
                n = await readinto(rbuf)
                if n is None:  # woken without data (non-blocking socket): wait again
                    continue
                data = memoryview(rbuf)[:n] if n else b""
            else:
                data = await self.reader.read(len(rbuf))
            if not data:
                if not got:
                    raise EOFError("closed before response")
                parser.eof()
                break
            got = True
            if parser.feed(data):
                break
        return parser

    async def request(self, method, headers, parts, body_len):
        """Send one request; -> ResponseParser. Raises OSError/HttpError/TimeoutError on failure.

        A reused connection that the server closed while idle fails before any response byte; that
        one case is retried once on a fresh connection, as browsers do.
        """
        head = build_head(
            method, self.host, self.port, self.path, headers, body_len, self.keep_alive
        )
        for attempt in (0, 1):
            reused = self.writer is not None
            try:
                if not reused:
                    await self._connect()
                parser = await within(self._exchange(head, parts), self.timeout_s)
            except asyncio.TimeoutError:
                await self.close()
                raise OSError("timeout after %.1f s" % self.timeout_s)
            except EOFError:
                await self.close()
                if reused and attempt == 0:
                    continue
                raise OSError("connection closed before response")
            except OSError as e:
                await self.close()
                if reused and attempt == 0:
                    continue
                raise e
            except BaseException as e:  # timeout, cancellation, protocol errors: never reuse
                await self.close()
                raise e
            if not (self.keep_alive and parser.keep_alive):
                await self.close()
            return parser
