# ruff: noqa: UP031  (runs under MicroPython too: plain %-formatting on purpose)
"""Firmware unit cases that run under BOTH real MicroPython (via Node, see mpy_run.mjs) and CPython.

Only what MicroPython accepts may appear here: no pytest, no f-string `=`, no dataclasses. A case
is a function named `case_*`, sync or async, that raises on failure. `run_all()` drives them all and
prints `PASS name` / `FAIL name: error` lines; the pytest side parses those.
"""

import sys

if sys.implementation.name == "micropython":
    import asyncio

    from scfw import app, buffer, config, hal, http, proto, synth
else:
    import asyncio

    from firmware.scfw import app, buffer, config, hal, http, proto, synth


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def raises_proto(line, code, id=None):
    try:
        proto.parse(line)
    except proto.ProtoError as e:
        check(e.code == code, "%r: code %s, wanted %s" % (line, e.code, code))
        check(e.id == id, "%r: id %r, wanted %r" % (line, e.id, id))
        return
    raise AssertionError("%r parsed" % (line,))


# -- protocol ------------------------------------------------------------------------------------
def case_proto_parse_and_encode():
    m = proto.parse(b'{"t":"hello","id":1,"v":1}\r\n')
    check(m["t"] == "hello" and m["id"] == 1)
    m = proto.parse('{"t":"ping","id":"abc","token":42}')
    check(m["id"] == "abc" and m["token"] == 42)
    line = proto.encode(proto.ok(7, cmd="ping", board_us=5))
    check(line.endswith(b"\n") and line.count(b"\n") == 1, "one line")
    check(b" " not in line, "compact JSON")
    back = proto.parse(line.replace(b'"t":"ok"', b'"t":"status"'))
    check(back["id"] == 7 and back["v"] == 1 and back["board_us"] == 5)


def case_proto_garbage():
    raises_proto(b"", "empty")
    raises_proto(b"   \r\n", "empty")
    raises_proto(b"hello world", "bad_json")
    raises_proto(b'{"t":"hello","id":1', "bad_json")
    raises_proto(b"\xff\xfe\x00", "bad_json")
    raises_proto(b"[1,2,3]", "bad_json")
    raises_proto(b"42", "bad_json")
    raises_proto(b'{"t":"reboot","id":9}', "unknown_command", 9)
    raises_proto(b'{"id":9}', "unknown_command", 9)
    raises_proto(b'{"t":"hello"}', "bad_id")
    raises_proto(b'{"t":"hello","id":true}', "bad_id")
    raises_proto(b'{"t":"hello","id":[1]}', "bad_id")
    raises_proto(b'{"t":"hello","id":1,"pad":"' + b"x" * proto.MAX_LINE + b'"}', "too_long")


def case_proto_versioning():
    proto.parse(b'{"t":"status","id":1}')
    proto.parse(b'{"t":"status","id":1,"v":1}')
    raises_proto(b'{"t":"status","id":3,"v":2}', "bad_version", 3)
    raises_proto(b'{"t":"status","id":3,"v":0}', "bad_version", 3)
    raises_proto(b'{"t":"status","id":3,"v":"1"}', "bad_version", 3)
    raises_proto(b'{"t":"status","id":3,"v":true}', "bad_version", 3)
    check(
        proto.encode({"t": "log"}).startswith(b'{"t":"log","v":1}')
        or b'"v":1' in proto.encode({"t": "log"})
    )


def case_config_check_and_public():
    c = config.defaults()
    c.update(config.check({"wifi_ssid": "lab", "wifi_key": "s3cret-key", "chunk_bytes": 3200}))
    pub = config.public(c)
    check("wifi_key" not in pub and pub["wifi_key_set"] is True, "key hidden")
    check("s3cret" not in str(pub))
    for bad in (
        {"chunk_bytes": 3},
        {"chunk_bytes": True},
        {"sample_rate": "16000"},
        {"source": "mic"},
        {"target": "ftp://x"},
        {"headers": {"X-A": 1}},
        {"headers": {"X-A": "a\r\nEvil: 1"}},
        {"nope": 1},
        {"keep_alive": 1},
        {"target": "http://host:notaport/x"},  # issue 13 item 6: was accepted, start -> internal
        {"target": "http://host:0/x"},
        {"target": "http://host:70000/x"},
        {"target": "http://[::1/x"},
    ):
        try:
            config.check(bad, 5)
        except proto.ProtoError as e:
            check(e.code == "bad_config" and e.id == 5)
            continue
        raise AssertionError("accepted %r" % (bad,))


# -- synthesis -----------------------------------------------------------------------------------
def _render(seed, nbytes, line_hz=50):
    buf = bytearray(nbytes)
    n = synth.Synth(seed, 16000, line_hz).render(buf)
    check(n == nbytes)
    return buf


def _checksum(buf):
    h = 0x811C9DC5
    for b in buf:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


# The same bytes on every Python: computed once under CPython and checked under MicroPython too.
GOLDEN_SEED1_4000 = 0x155C8763


def case_synth_deterministic():
    a = _render(1234, 4000)
    b = _render(1234, 4000)
    check(a == b, "same seed, same bytes")
    c = _render(1235, 4000)
    check(a != c, "different seeds differ")
    # Rendering in pieces continues the same stream.
    s = synth.Synth(1234)
    p = bytearray(4000)
    s.render(p, 1000)
    q = bytearray(3000)
    s.render(q)
    check(bytes(p[:1000]) + bytes(q) == bytes(a), "pieces concatenate")


def case_synth_golden_bytes():
    got = _checksum(_render(1, 4000))
    check(got == GOLDEN_SEED1_4000, "checksum %08x, golden %08x" % (got, GOLDEN_SEED1_4000))


def case_synth_hum_present():
    for line_hz in (50, 60):
        buf = _render(77, 32000, line_hz)
        hum = synth.goertzel_power(buf, 32000, 16000, 2 * line_hz)
        for other in (137, 173, 411, 1234):
            p = synth.goertzel_power(buf, 32000, 16000, other)
            check(hum > 50 * p, "hum %d Hz %.3g vs %d Hz %.3g" % (2 * line_hz, hum, other, p))
    # Not silence, not clipped flat: a sane RMS.
    tot = 0
    for j in range(0, 32000, 2):
        v = buf[j] | (buf[j + 1] << 8)
        if v >= 32768:
            v -= 65536
        tot += v * v
    rms = (tot / 16000) ** 0.5
    check(1000 < rms < 12000, "rms %d" % rms)


def case_synth_bank_parts():
    s = synth.Synth(5)
    bank = synth.Bank(s, 6000)
    for seq in (0, 1, 2, 17, 1000):
        parts = bank.parts(seq, 3200)
        total = 0
        for p in parts:
            total += len(p)
        check(total == 3200, "length")
        check(bytes(bank.chunk(seq, 3200)) == b"".join([bytes(p) for p in parts]))
    check(bank.chunk(1, 3200) != bank.chunk(2, 3200), "chunks differ")
    big = bank.parts(3, 20000)  # larger than the bank: wraps several times
    check(sum([len(p) for p in big]) == 20000 and len(big) >= 4)
    check(synth.device_seed("esp32-000001") == synth.device_seed("esp32-000001"))
    check(synth.device_seed("esp32-000001") != synth.device_seed("esp32-000002"))


def case_i2s_reduce():
    # Two 32-bit LE slots: 0x12345600 and 0xFEDCBA00 -> top 16 bits 0x1234, 0xFEDC.
    raw = bytes([0x00, 0x56, 0x34, 0x12, 0x00, 0xBA, 0xDC, 0xFE])
    out = bytearray(4)
    n = hal.reduce_32_to_16(raw, len(raw), out)
    check(n == 4 and bytes(out) == bytes([0x34, 0x12, 0xDC, 0xFE]), repr(out))


# -- HTTP framing --------------------------------------------------------------------------------
def case_http_request_head():
    h = http.build_head(
        "POST",
        "10.0.0.5",
        8080,
        "/api/esp32/audio/upload",
        [("X-Device-ID", "esp32-000001"), ("X-Sequence", "7")],
        32000,
        True,
    )
    text = h.decode()
    check(text.startswith("POST /api/esp32/audio/upload HTTP/1.1\r\nHost: 10.0.0.5:8080\r\n"))
    check("\r\nX-Device-ID: esp32-000001\r\n" in text and "\r\nX-Sequence: 7\r\n" in text)
    check("\r\nContent-Length: 32000\r\n" in text and "\r\nConnection: keep-alive\r\n" in text)
    check(text.endswith("\r\n\r\n") and text.count("\r\n\r\n") == 1)
    check("Connection: close" in http.build_head("POST", "h", 80, "/", [], 0, False).decode())
    check(
        http.parse_url("http://127.0.0.1:9000/a/b?x=1") == ("http", "127.0.0.1", 9000, "/a/b?x=1")
    )
    check(http.parse_url("https://example.org") == ("https", "example.org", 443, "/"))
    check(http.parse_url("http://[::1]:81/u") == ("http", "::1", 81, "/u"))
    for bad in ("example.org/x", "ftp://h/", "http:///x"):
        try:
            http.parse_url(bad)
        except http.HttpError:
            continue
        raise AssertionError("accepted " + bad)


def _feed_bytewise(data, step=1):
    p = http.ResponseParser()
    done = False
    for i in range(0, len(data), step):
        done = p.feed(data[i : i + step])
    return p, done


def case_http_response_content_length():
    resp = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
    for step in (1, 2, 7, len(resp)):
        p, done = _feed_bytewise(resp, step)
        check(done and p.status == 200 and bytes(p.body) == b'{"ok":true}', "step %d" % step)
        check(p.keep_alive and p.headers["content-type"] == "application/json")
    # Two pipelined responses: the second stays in `extra`.
    p = http.ResponseParser()
    check(p.feed(resp + b"HTTP/1.1 500 x\r\n"))
    check(p.extra == b"HTTP/1.1 500 x\r\n")
    p, done = _feed_bytewise(
        b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    check(done and p.status == 413 and not p.keep_alive and p.reason == "Payload Too Large")
    p, done = _feed_bytewise(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    check(done and not p.keep_alive, "1.0 closes by default")


def case_http_response_chunked():
    resp = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    for step in (1, 3, len(resp)):
        p, done = _feed_bytewise(resp, step)
        check(done and bytes(p.body) == b"hello, world" and p.body_len == 12, "step %d" % step)
    p = http.ResponseParser()
    check(not p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"))
    try:
        p.eof()
    except http.HttpError:
        pass
    else:
        raise AssertionError("truncated chunked body accepted")
    for bad in (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    ):
        try:
            http.ResponseParser().feed(bad)
        except http.HttpError:
            continue
        raise AssertionError("accepted %r" % bad)


def case_http_response_until_close_and_interim():
    p = http.ResponseParser()
    check(not p.feed(b"HTTP/1.1 200 OK\r\n\r\nabc"))
    check(not p.feed(b"def"))
    check(p.eof() and bytes(p.body) == b"abcdef" and not p.keep_alive)
    p, done = _feed_bytewise(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    check(done and p.status == 201 and bytes(p.body) == b"ok")
    p, done = _feed_bytewise(b"HTTP/1.1 204 No Content\r\n\r\n")
    check(done and p.status == 204)


def case_http_response_bare_lf_line_ends():
    """RFC 9112 2.2: a recipient may take a bare LF as a line end, and servers and proxies that
    write LF (or LF before the last CRLF) exist. The parser waited for CRLF CRLF that never came:
    a 200 the server stored ran into the timeout, was counted failed and retried."""
    body = b'{"duplicate":false}'
    for head in (
        b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 19\n\n",
        b"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 19\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\nContent-Length: 19\r\n\n",
    ):
        for step in (1, 5, 1000):
            p, done = _feed_bytewise(head + body + b"HTTP", step)
            check(done and p.status == 200, "%r step %d: not done" % (head, step))
            check(bytes(p.body) == body and p.extra == b"HTTP", "%r: %r" % (head, p.body))
            check(p.headers["content-type"] == "application/json" and p.keep_alive, repr(head))
    chunked = (
        b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"
        b"5\nhello\n7;x=1\r\n, world\n0\nX-Trailer: 1\n\n"
    )
    for step in (1, 4, len(chunked)):
        p, done = _feed_bytewise(chunked, step)
        check(done and bytes(p.body) == b"hello, world", "chunked LF step %d" % step)


def case_http_status_code_is_three_digits():
    """A status is 3DIGIT. int() also took "+200" and "2_00" (a 2xx: acknowledged), "2000" (>= 500:
    retried as a server error) and "-200" (< 200: taken as an interim 1xx, waited for)."""
    for code in (b"+200", b"2_00", b"2000", b"-200", b"20", b" 200x"):
        try:
            http.ResponseParser().feed(b"HTTP/1.1 " + code + b" OK\r\nContent-Length: 0\r\n\r\n")
        except http.HttpError:
            continue
        raise AssertionError("accepted status %r" % code)


def case_http_response_obs_text():
    """Bytes outside ASCII in a reason phrase or a header value (obs-text, RFC 9110 5.5) are
    legal; they raised UnicodeError, so the 200 counted as a failure and was retried."""
    p, done = _feed_bytewise(
        b"HTTP/1.1 200 \xc7a va\xff\r\nServer: caf\xe9\r\nContent-Length: 2\r\n\r\nok"
    )
    check(done and p.status == 200 and bytes(p.body) == b"ok", "obs-text")
    check(p.reason.startswith("?a va"), repr(p.reason))


def case_http_response_many_headers_kept_small():
    """Only the headers the client reads are kept: 400 others (6 KB) are skipped, not stored."""
    head = b"HTTP/1.1 200 OK\r\n"
    for i in range(400):
        head += b"X-Hop-%d: edge\r\n" % i
    head += b"Content-Length: 2\r\nConnection: close\r\n\r\nok"
    p, done = _feed_bytewise(head, 512)
    check(done and bytes(p.body) == b"ok" and not p.keep_alive, "many headers")
    check(len(p.headers) == 2, "headers kept: %d" % len(p.headers))


# -- fake streams: the client and the app under MicroPython's own asyncio --------------------------
class FakeServer:
    """In-memory HTTP peer: counts connections and requests, answers each full request."""

    def __init__(
        self, statuses=None, close_after=None, refuse=0, silent_close_after=None, lose=0, eol="\r\n"
    ):
        self.statuses = statuses or []
        self.eol = eol  # the answer's line end: a server or proxy may write a bare LF
        self.lose = lose  # store this many requests, then drop the connection without answering
        self.rows = {}  # (device, sequence) -> times received: the ledger, de-duplicated
        self.silent_close_after = silent_close_after  # close while idle, without saying so
        self.close_after = close_after  # close the connection after this many requests on it
        self.refuse = refuse  # refuse this many connects (the error shows at drain, as on a board)
        self.connects = 0
        self.requests = []

    async def open_connection(self, host, port, ssl=None):
        self.connects += 1
        refused = self.refuse > 0
        if refused:
            self.refuse -= 1
        conn = FakeConn(self, refused)
        return conn, conn


class FakeConn:
    def __init__(self, server, refused):
        self.server = server
        self.refused = refused
        self.inbuf = bytearray()
        self.out = bytearray()
        self.on_conn = 0
        self.closed = False

    # writer side
    def write(self, data):
        self.inbuf.extend(data)

    async def drain(self):
        if self.refused:
            raise OSError(111, "ECONNREFUSED")
        if self.closed:
            return  # the peer is gone; as with TCP, the write "succeeds" and the read sees EOF
        while True:
            i = self.inbuf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(self.inbuf[:i]).decode()
            n = 0
            for line in head.split("\r\n")[1:]:
                k, v = line.split(":", 1)
                if k.lower() == "content-length":
                    n = int(v)
            if len(self.inbuf) < i + 4 + n:
                return
            body = bytes(self.inbuf[i + 4 : i + 4 + n])
            self.inbuf = self.inbuf[i + 4 + n :]
            srv = self.server
            srv.requests.append((head, body))
            st = srv.statuses.pop(0) if srv.statuses else 200
            self.on_conn += 1
            key = None
            for line in head.split("\r\n"):
                if line.startswith("X-Sequence: "):
                    key = int(line[12:])
            dup = False
            if 200 <= st < 300 and key is not None:
                dup = key in srv.rows
                srv.rows[key] = srv.rows.get(key, 0) + 1
            if srv.lose > 0:  # the body arrived and was stored; the answer never leaves
                srv.lose -= 1
                self.closed = True
                return
            last = srv.close_after is not None and self.on_conn >= srv.close_after
            hdr = "Connection: close\r\n" if last else ""
            js = '{"status":"%s","duplicate": %s,"sequence":%s}' % (
                "duplicate" if dup else "stored",
                "true" if dup else "false",
                key,
            )
            self.out.extend(
                ("HTTP/1.1 %d X\r\n%sContent-Length: %d\r\n\r\n%s" % (st, hdr, len(js), js))
                .replace("\r\n", srv.eol)
                .encode()
            )
            silent = srv.silent_close_after is not None and self.on_conn >= srv.silent_close_after
            if last or silent:
                self.closed = True

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass

    # reader side
    async def read(self, n):
        if self.refused:
            raise OSError(111, "ECONNREFUSED")
        await asyncio.sleep(0)
        if not self.out:
            return b""
        d = bytes(self.out[:n])
        self.out = self.out[n:]
        return d


async def case_client_keepalive_and_reconnect():
    srv = FakeServer(close_after=3)
    c = http.Client("http://127.0.0.1:8080/up", srv.open_connection, True, 5)
    for i in range(5):
        r = await c.request("POST", [("X-Sequence", str(i))], [b"ab", memoryview(b"cdef")], 6)
        check(r.status == 200, "status")
    check(len(srv.requests) == 5 and srv.requests[4][1] == b"abcdef")
    check(
        srv.connects == 2,
        "keep-alive: 3 requests on the first connection, got %d connects" % srv.connects,
    )
    await c.close()
    # A refused connect surfaces at drain: reported as OSError, and the next request reconnects.
    srv = FakeServer(refuse=1)
    c = http.Client("http://127.0.0.1:8080/up", srv.open_connection, True, 5)
    try:
        await c.request("POST", [], [b"x"], 1)
    except OSError:
        pass
    else:
        raise AssertionError("refused connect not reported")
    r = await c.request("POST", [], [b"x"], 1)
    check(r.status == 200 and srv.connects == 2)
    # An idle keep-alive connection the server dropped silently: retried once on a new one.
    srv = FakeServer(silent_close_after=1)
    c = http.Client("http://127.0.0.1:8080/up", srv.open_connection, True, 5)
    for _ in range(3):
        r = await c.request("POST", [], [b"abc"], 3)
        check(r.status == 200, "stale connection retried transparently")
    check(len(srv.requests) == 3 and srv.connects == 3, "%d connects" % srv.connects)


class GatedServer(FakeServer):
    """A FakeServer whose connects complete when the test opens `gate`: the connection object
    exists from the start (as a socket does while it connects), so each one can be checked."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()
        self.conns = []

    async def open_connection(self, host, port, ssl=None):
        conn = FakeConn(self, False)
        self.conns.append(conn)
        try:
            await self.gate.wait()
        except BaseException:
            conn.close()  # cancelled before it connected: closed (the HAL's job, not wait_for's)
            raise
        return conn, conn


async def _turns(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def case_request_cancelled_as_its_connection_comes_keeps_both():
    """A request cancelled in the loop turn its connection completes (or k turns after, or just
    before): the cancel is kept (CPython 3.11's wait_for returned the result and dropped it) and
    the connection is closed or held by the client, never dropped open (MicroPython's wait_for
    drops the result when the cancel wins)."""
    for k in range(4):
        for cancel_first in (False, True):
            srv = GatedServer()
            c = http.Client("http://127.0.0.1:8080/up", srv.open_connection, True, 5)
            t = asyncio.create_task(c.request("POST", [], [b"x"], 1))
            await _turns(3)  # t is waiting for the connection
            check(len(srv.conns) == 1, "k=%d: not connecting" % k)
            if cancel_first:
                t.cancel()
                srv.gate.set()
            else:
                srv.gate.set()
                await _turns(k)
                t.cancel()
            for _ in range(200):
                if t.done():
                    break
                await asyncio.sleep(0.001)
            where = "k=%d cancel_first=%s" % (k, cancel_first)
            check(t.done(), where + ": the request never ended")
            try:
                await t
            except asyncio.CancelledError:
                pass
            else:
                # only once the request had finished may it have a result instead of the cancel
                check(k > 0 and not cancel_first, where + ": the request returned after its cancel")
            for conn in srv.conns:
                check(conn.closed or conn is c.writer, where + ": a connection was left open")
            await c.close()


def _busy_ms(ms):
    """Keep the loop from running for `ms` (a board busy elsewhere): no yield."""
    if sys.implementation.name == "micropython":
        import time

        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < ms:
            pass
    else:
        import time

        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            pass


async def case_connect_timing_out_as_its_connection_comes_keeps_it():
    """The connection completes, and before the waiting request resumes its timeout has passed
    too (the loop was busy): the request may fail with the timeout, but the connection must be
    closed or held by the client (MicroPython's wait_for dropped it open)."""
    srv = GatedServer()
    c = http.Client("http://127.0.0.1:8080/up", srv.open_connection, True, 0.05)
    t = asyncio.create_task(c.request("POST", [], [b"x"], 1))
    await _turns(3)  # t waits for the connection, 50 ms at most
    check(len(srv.conns) == 1, "not connecting")
    srv.gate.set()  # connected before the timeout...
    _busy_ms(100)  # ...but nothing runs until it has passed
    for _ in range(500):
        if t.done():
            break
        await asyncio.sleep(0.001)
    check(t.done(), "the request never ended")
    try:
        r = await t
        check(r.status == 200, "status %d" % r.status)  # connected in time...
    except OSError as e:
        check("timeout" in str(e), str(e))  # ...or timed out: either is right
    for conn in srv.conns:
        check(conn.closed or conn is c.writer, "a connection was left open")
    await c.close()


async def case_within_keeps_cancels_results_and_timeouts():
    """http.within (the firmware's wait_for): what wait_network and the client wait with."""
    ev = asyncio.Event()
    ev.set()
    check(await http.within(ev.wait(), 5) is True, "result")

    async def nap():
        await asyncio.sleep(5)

    try:
        await http.within(nap(), 0.02)
    except asyncio.TimeoutError:  # noqa: UP041 - MicroPython has no builtin TimeoutError
        pass
    else:
        raise AssertionError("no timeout")

    async def boom():
        await asyncio.sleep(0)
        raise ValueError("boom")

    try:
        await http.within(boom(), 5)
    except ValueError as e:
        check(str(e) == "boom", str(e))
    else:
        raise AssertionError("the error was lost")
    for k in range(3):  # a cancel k turns after the awaited event is set: kept while waiting
        ev = asyncio.Event()
        t = asyncio.create_task(http.within(ev.wait(), 5))
        await _turns(2)
        ev.set()
        await _turns(k)
        t.cancel()
        await _turns(6)
        check(t.done(), "k=%d: not done" % k)
        try:
            await t
        except asyncio.CancelledError:
            pass
        else:
            check(k > 0, "k=0: the wait returned after its cancel")


def case_buffer_bounded_and_backoff():
    q = buffer.ChunkQueue(max_chunks=3, max_bytes=1 << 20)
    for s in range(5):
        q.push(buffer.Chunk(s, 0, 100))
    check(len(q) == 3 and q.dropped == 2, "drops oldest")
    check(q.pop().seq == 2, "oldest kept is 2")
    c = buffer.Chunk(9, 0, 4, b"abcd")
    q2 = buffer.ChunkQueue(max_chunks=10, max_bytes=10)
    q2.push(c)
    q2.push(buffer.Chunk(10, 0, 4, b"efgh"))
    q2.push(buffer.Chunk(11, 0, 4, b"ijkl"))  # 12 bytes > 10: the oldest goes
    check(len(q2) == 2 and q2.dropped == 1 and q2.stored == 8)
    check(q2.pop().seq == 10)
    q2.push(buffer.Chunk(12, 0, 4, b"mnop"))
    check(
        q2.requeue(buffer.Chunk(13, 0, 4, b"qrst")) is False and q2.dropped == 2,
        "full: requeue drops",
    )
    check(q2.requeue(buffer.Chunk(14, 0, 0)) is True and q2.pop().seq == 14, "requeue goes first")
    q3 = buffer.ChunkQueue(max_chunks=0)
    q3.push(buffer.Chunk(1, 0, 1))
    check(len(q3) == 0 and q3.dropped == 1)
    b = buffer.Backoff(250, 2, 3000)
    check(b.schedule(6) == [250, 500, 1000, 2000, 3000, 3000], repr(b.schedule(6)))
    check(b.delay_ms(0) == 0)
    rng = synth.XorShift32(3)
    j = buffer.Backoff(1000, 2, 8000, 0.1, rng.next)
    for a in range(1, 6):
        d = j.delay_ms(a)
        base = min(1000 * 2 ** (a - 1), 8000)
        check(base * 0.9 <= d <= base * 1.1, "jitter bound")


class FakeHal(hal.Hal):
    def __init__(self, server):
        self.lines = []
        self.server = server
        self.files = {}
        self.t = 0

    def write_line(self, data):
        self.lines.append(data)

    def monotonic_us(self):
        import time

        if hasattr(time, "ticks_us"):
            return time.ticks_us()
        return int(time.monotonic() * 1e6)

    def open_connection(self, host, port, ssl=None):
        return self.server.open_connection(host, port, ssl)

    def read_file(self, name):
        return self.files.get(name)

    def write_file(self, name, text):
        self.files[name] = text


class Lines:
    def __init__(self, items):
        self.items = list(items)

    async def readline(self):
        await asyncio.sleep(0)
        if not self.items:
            return b""
        x = self.items.pop(0)
        if isinstance(x, (int, float)):
            await asyncio.sleep(x)
            return await self.readline()
        return x


def _decode(lines):
    import json

    out = []
    for raw in lines:
        check(raw.endswith(b"\n") and raw.count(b"\n") == 1, "one line per write")
        out.append(json.loads(raw))
    return out


async def case_app_commands_garbage_and_run():
    srv = FakeServer(statuses=[503])
    h = FakeHal(srv)
    cfg = (
        b'{"t":"config","id":2,"target":"http://127.0.0.1:9/up","device_id":"esp32-000042",'
        b'"chunk_bytes":640,"bank_bytes":4000,"wifi_key":"hunter2-secret","backoff_ms":5,"seed":9}'
    )
    script = [
        b'{"t":"hello","id":1}',
        b"garbage \x00\xff",
        b'{"t":"status","id":"s1","v":9}',
        cfg,
        b'{"t":"ping","id":3,"token":"abc"}',
        b'{"t":"start","id":4,"rate":50,"duration_s":0.2}',
        b'{"t":"config","id":5,"chunk_bytes":2}',
        1.0,
        b'{"t":"status","id":6}',
        b'{"t":"exit","id":7}',
        b'{"t":"status","id":8}',
    ]
    await app.run(h, Lines(script))
    msgs = _decode(h.lines)
    for raw in h.lines:
        check(b"hunter2" not in raw, "key leaked")
    by_id = {}
    for m in msgs:
        check(m["v"] == 1)
        if m.get("id") is not None:
            by_id[m["id"]] = m
    check(msgs[0]["t"] == "hello" and msgs[0]["id"] is None, "boot hello")
    check(
        by_id[1]["t"] == "hello" and by_id[1]["fw"] == proto.FW_VERSION and by_id[1]["proto"] == 1
    )
    errs = [m for m in msgs if m["t"] == "error"]
    check(errs[0]["code"] == "bad_json" and errs[0]["id"] is None)
    check(by_id["s1"]["t"] == "error" and by_id["s1"]["code"] == "bad_version")
    check(by_id[2]["t"] == "ok" and by_id[2]["config"]["wifi_key_set"] is True)
    check(by_id[3]["token"] == "abc" and by_id[3]["board_us"] > 0 or by_id[3]["board_us"] == 0)
    check(by_id[4]["t"] == "ok" and by_id[4]["run"] == 1)
    check(by_id[5]["t"] == "error" and by_id[5]["code"] == "busy")
    check(8 not in by_id, "nothing read after exit")
    check(by_id[7]["t"] == "ok")
    st = by_id[6]
    check(st["t"] == "status" and not st["running"], "run over")
    check(st["produced"] == 10, "10 chunks at 50/s over 0.2 s, got %d" % st["produced"])
    check(
        st["ok"] == 10 and st["failed"] == 1 and st["retried"] == 1 and st["dropped"] == 0, repr(st)
    )
    results = []
    for m in msgs:
        if m["t"] == "result":
            results.append(m)
        elif m["t"] == "results":
            results.extend(m["items"])
    check(len(results) == 11, "one result per request, got %d" % len(results))
    check(results[0]["status"] == 503 and results[0]["error"] and results[1]["seq"] == 0)
    done = [m for m in msgs if m["t"] == "done"]
    check(len(done) == 1 and done[0]["ok"] == 10)
    seqs = []
    for head, body in srv.requests:
        check(len(body) == 640)
        check("\r\nX-Device-ID: esp32-000042" in head and "\r\nX-Sample-Rate: 16000" in head)
        check("\r\nContent-Type: application/octet-stream" in head)
        for line in head.split("\r\n"):
            if line.startswith("X-Sequence: "):
                seqs.append(int(line[12:]))
    check(seqs == [0] + list(range(10)), repr(seqs))
    check(srv.connects == 1, "keep-alive across the run, %d connects" % srv.connects)
    check("hunter2-secret" in h.files[config.FILE], "key persisted on the board")


async def case_retry_keeps_sequence_and_duplicate_is_delivered():
    """Issue 13 item 3: the answer to an upload is lost after the server stored it. The retry
    carries the same X-Sequence, the server answers `"duplicate": true`, and the firmware
    counts one delivery (ok) and one duplicate: its counters agree with the ledger."""
    srv = FakeServer(lose=1)
    h = FakeHal(srv)
    cfg = (
        b'{"t":"config","id":1,"target":"http://127.0.0.1:9/up","device_id":"esp32-000043",'
        b'"chunk_bytes":640,"bank_bytes":4000,"backoff_ms":5,"seed":9,"persist":false}'
    )
    script = [cfg, b'{"t":"start","id":2,"rate":20,"duration_s":0.1}', 1.0]
    script += [b'{"t":"status","id":3}', b'{"t":"exit","id":4}']
    await app.run(h, Lines(script))
    msgs = _decode(h.lines)
    st = [m for m in msgs if m.get("id") == 3][0]
    seqs = []
    for head, _body in srv.requests:
        for line in head.split("\r\n"):
            if line.startswith("X-Sequence: "):
                seqs.append(int(line[12:]))
    check(seqs == [0, 0, 1], "the retry keeps X-Sequence: %r" % seqs)
    check(srv.rows == {0: 2, 1: 1}, repr(srv.rows))
    check(st["produced"] == 2 and st["ok"] == 2 and st["failed"] == 1, repr(st))
    check(st["duplicates"] == 1 and st["dropped"] == 0, repr(st))
    check(st["ok"] == len(srv.rows), "firmware ok equals the ledger's distinct rows")
    results = []
    for m in msgs:
        if m["t"] == "result":
            results.append(m)
        elif m["t"] == "results":
            results.extend(m["items"])
    check([r["dup"] for r in results] == [False, True, False], repr(results))


async def case_bare_lf_answers_are_deliveries():
    """A server (or proxy) answering with bare-LF line ends: each 200 is one delivery. The
    firmware waited for CRLF CRLF until its timeout, counted every stored chunk failed, sent it
    again (a duplicate on the server) and dropped it after its retries."""
    srv = FakeServer(eol="\n")
    h = FakeHal(srv)
    cfg = (
        b'{"t":"config","id":1,"target":"http://127.0.0.1:9/up","device_id":"esp32-000046",'
        b'"chunk_bytes":640,"bank_bytes":4000,"backoff_ms":5,"seed":9,"persist":false,'
        b'"timeout_s":0.3,"retries":1}'
    )
    script = [cfg, b'{"t":"start","id":2,"rate":20,"duration_s":0.15}', 1.5]
    script += [b'{"t":"status","id":3}', b'{"t":"exit","id":4}']
    await app.run(h, Lines(script))
    msgs = _decode(h.lines)
    st = [m for m in msgs if m.get("id") == 3][0]
    check(st["produced"] == 3 and st["ok"] == 3, repr(st))
    check(st["failed"] == 0 and st["retried"] == 0 and st["dropped"] == 0, repr(st))
    check(st["duplicates"] == 0 and len(srv.requests) == 3, repr(st))
    check(srv.rows == {0: 1, 1: 1, 2: 1}, repr(srv.rows))


async def case_conflict_is_counted_and_not_retried():
    """A 409 is a sequence conflict: the server holds that X-Sequence with other audio and
    stored nothing. Sending it again would be refused again, so the board does not retry it:
    it counts the chunk failed, dropped and in `conflicts`, and goes on with the next one."""
    srv = FakeServer(statuses=[409])
    h = FakeHal(srv)
    cfg = (
        b'{"t":"config","id":1,"target":"http://127.0.0.1:9/up","device_id":"esp32-000045",'
        b'"chunk_bytes":640,"bank_bytes":4000,"backoff_ms":5,"seed":9,"persist":false}'
    )
    script = [cfg, b'{"t":"start","id":2,"rate":20,"duration_s":0.15}', 1.0]
    script += [b'{"t":"status","id":3}', b'{"t":"exit","id":4}']
    await app.run(h, Lines(script))
    msgs = _decode(h.lines)
    st = [m for m in msgs if m.get("id") == 3][0]
    seqs = []
    for head, _body in srv.requests:
        for line in head.split("\r\n"):
            if line.startswith("X-Sequence: "):
                seqs.append(int(line[12:]))
    check(seqs == [0, 1, 2], "sequence 0 sent once, then on: %r" % seqs)
    check(st["produced"] == 3 and st["ok"] == 2 and st["failed"] == 1, repr(st))
    check(st["retried"] == 0 and st["dropped"] == 1 and st["duplicates"] == 0, repr(st))
    check(st.get("conflicts") == 1, "the conflict is counted: %r" % st)
    results = []
    for m in msgs:
        if m["t"] == "result":
            results.append(m)
        elif m["t"] == "results":
            results.extend(m["items"])
    check(
        [(r["seq"], r["status"]) for r in results] == [(0, 409), (1, 200), (2, 200)], repr(results)
    )
    check(results[0]["error"] and results[0]["attempt"] == 1, repr(results[0]))


async def case_start_seq_goes_on_past_what_a_rebooted_board_sent():
    """A host restarting a board that rebooted mid-run gives `seq`: the board numbers its
    uploads from there (it starts from 0 after a boot, which the server holds); a lower `seq`
    never takes it back; a bad one is refused."""
    srv = FakeServer()
    h = FakeHal(srv)
    cfg = (
        b'{"t":"config","id":1,"target":"http://127.0.0.1:9/up","device_id":"esp32-000044",'
        b'"chunk_bytes":640,"bank_bytes":4000,"backoff_ms":5,"seed":9,"persist":false}'
    )
    script = [cfg, b'{"t":"start","id":2,"rate":20,"duration_s":0.1,"seq":70}', 0.6]
    script += [b'{"t":"start","id":3,"rate":20,"duration_s":0.1,"seq":5}', 0.6]
    script += [b'{"t":"start","id":4,"rate":20,"duration_s":0.1,"seq":-1}']
    script += [b'{"t":"start","id":5,"rate":20,"duration_s":0.1,"seq":1.5}']
    script += [b'{"t":"exit","id":6}']
    await app.run(h, Lines(script))
    by_id = {m["id"]: m for m in _decode(h.lines) if m.get("id") is not None}
    check(by_id[2]["t"] == "ok" and by_id[3]["t"] == "ok", repr(by_id))
    check(by_id[4]["code"] == "bad_start" and by_id[5]["code"] == "bad_start", repr(by_id))
    seqs = []
    for head, _body in srv.requests:
        for line in head.split("\r\n"):
            if line.startswith("X-Sequence: "):
                seqs.append(int(line[12:]))
    check(seqs == [70, 71, 72, 73], "from seq, then on from its own: %r" % seqs)


async def case_console_error_does_not_end_the_app():
    """Issue 13 item 4: a MemoryError from the console (a 100 KB burst) costs one error line."""

    class Boom(Lines):
        def __init__(self, items):
            Lines.__init__(self, items)
            self.raised = 0

        async def readline(self):
            if self.raised < 2:
                self.raised += 1
                raise MemoryError("memory allocation failed, allocating 102400 bytes")
            return await Lines.readline(self)

    h = FakeHal(FakeServer())
    await app.run(h, Boom([b'{"t":"status","id":7}', b'{"t":"exit","id":8}']))
    msgs = _decode(h.lines)
    errs = [m for m in msgs if m["t"] == "error"]
    check(len(errs) == 2 and errs[0]["code"] == "internal" and "MemoryError" in errs[0]["msg"])
    check([m["t"] for m in msgs if m.get("id") in (7, 8)] == ["status", "ok"], repr(msgs))


def case_backoff_is_tied_to_the_buffer():
    """Issue 13 item 7: 8 queued chunks at 1/s cover 8 s; no wait may be that long."""
    cfg = config.defaults()
    cap = app.backoff_cap_ms(cfg, 1000000)
    check(cap == 4000, "cap %d" % cap)
    span = cfg["buffer_chunks"] * 1000
    b = buffer.Backoff(cfg["backoff_ms"], 2, cap, 0.1, synth.XorShift32(1).next)
    for d in b.schedule(cfg["retries"] + 3):
        check(d * 2 <= span * 1.1, "a retry wait of %d ms against a %d ms buffer" % (d, span))
    cfg["backoff_max_ms"] = 1000
    check(app.backoff_cap_ms(cfg, 1000000) == 1000, "a smaller configured cap stays")
    cfg["buffer_chunks"] = 0
    check(app.backoff_cap_ms(cfg, 1000000) == cfg["backoff_ms"], "never below backoff_ms")


async def case_start_refuses_what_does_not_fit():
    """The memory plan: a start whose buffers do not fit is refused with the figures."""

    class Small(FakeHal):
        def mem_free(self):
            return 30000

        def mem_total(self):
            return 60000

    h = Small(FakeServer())
    script = [
        b'{"t":"config","id":1,"target":"http://127.0.0.1:9/up","bank_bytes":70000}',
        b'{"t":"config","id":2,"target":"http://127.0.0.1:9/up","bank_bytes":40000,"persist":false}',
        b'{"t":"start","id":3,"rate":1,"duration_s":1}',
        b'{"t":"exit","id":4}',
    ]
    await app.run(h, Lines(script))
    by_id = {}
    for m in _decode(h.lines):
        if m.get("id") is not None:
            by_id[m["id"]] = m
    check(by_id[1]["t"] == "error" and by_id[1]["code"] == "bad_config", repr(by_id[1]))
    check("the heap holds 60000" in by_id[1]["msg"], by_id[1]["msg"])
    check(by_id[2]["t"] == "ok", repr(by_id[2]))
    check(by_id[3]["t"] == "error" and by_id[3]["code"] == "bad_config", repr(by_id[3]))
    check(
        "bank_bytes 40000" in by_id[3]["msg"] and "46000 free" in by_id[3]["msg"],  # 30000 + the
        by_id[3]["msg"],  # 16000-byte boot bank it would release
    )


def case_sine_table_is_the_series():
    """The stored quarter wave is what the integer Taylor series gives (bit-identical synth)."""
    q = (1 << synth._TBITS) // 4
    for i in range(0, q + 1, 16):
        v = (synth._isin(synth._PI * i // (2 * q)) * 32767 + synth._ONE // 2) // synth._ONE
        check(synth.sine_table()[i] == v, "entry %d" % i)


def cases():
    g = globals()
    return sorted([k for k in g if k.startswith("case_")])


async def _run_all(names):
    n_ok = 0
    n_fail = 0
    for name in names:
        try:
            r = globals()[name]()
            if hasattr(r, "send"):
                await r
            print("PASS " + name)
            n_ok += 1
        except Exception as e:
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
            n_fail += 1
    print("%d passed, %d failed" % (n_ok, n_fail))


def run_all(names=None):
    """Under MicroPython's WASM port, coroutines must run inside a task: returns one to await."""
    return _run_all(names or cases())
