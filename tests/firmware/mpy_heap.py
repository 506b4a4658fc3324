# ruff: noqa: UP031  (MicroPython module: plain %-formatting on purpose)
"""The firmware app in a small, fixed heap, as on an ESP32 without PSRAM (run by test_heap.py).

Runs under the WebAssembly MicroPython with `mpy_run.mjs --heap N`: the whole app (config, start,
hundreds of 32 KB uploads, results) against an in-heap fake network whose connections behave like
MicroPython's asyncio streams over an ESP32 socket:

* `write(buf)` hands the socket what its 5,760-byte send buffer takes and, like MicroPython's
  `Stream.write`, copies the rest into ONE new bytes object that lives until `drain()` has sent
  it (this copy is what broke 32 KB bodies on a board);
* the send buffer empties while the writer waits (each `drain()`/read yields to the "network");
* `read(n)` returns a new bytes object, `readinto(buf)` fills the caller's buffer.

The fake server follows the reference server's contract: one row per (device, X-Sequence), a
repeat answered 200 with `"duplicate": true`. It keeps a bitmap, not a list, so its own memory is
small and fixed. `run()` prints one `HEAP {json}` line with the figures.
"""

import asyncio
import gc
import json
import sys
import time

from scfw import app

SNDBUF = 5760  # ESP-IDF's default TCP send buffer
TRACE = False  # print progress lines (a hang in this port shows where it stopped)
SPLIT = 134217728  # this port's gc.mem_free() adds a nominal 128 MiB "max new split"


def free_now():
    # This port's gc.collect() only asks for a collection: it runs when control next returns to
    # JavaScript (an await that needs a timer), so the figure counts up to gc's 16 KB threshold
    # of not-yet-collected garbage as used: it understates what is really free.
    gc.collect()
    f = gc.mem_free()
    return f - SPLIT if f >= SPLIT else f


async def net_wait():
    """The network's turn: a real timer, so this port's deferred collection runs."""
    await asyncio.sleep_ms(1)


class Meter:
    def __init__(self):
        self.lowest = free_now()
        self.samples = 0

    def sample(self):
        f = free_now()
        self.samples += 1
        if f < self.lowest:
            self.lowest = f


class Server:
    """Parses requests from the bytes the sockets deliver; answers one JSON line each."""

    def __init__(self):
        self.seen = bytearray(512)  # bitmap of X-Sequence values stored (4096 sequences)
        self.rows = 0
        self.duplicates = 0
        self.bytes = 0
        self.connects = 0
        self.extra_headers = 0  # header lines added to every answer (a proxy's, a CDN's)


class Conn:
    def __init__(self, server, meter):
        self.srv = server
        self.meter = meter
        self.room = SNDBUF
        self.out = b""  # what write() could not hand over (MicroPython's Stream.out_buf)
        self.head = bytearray()
        self.body_left = -1  # -1: reading a head
        self.seq = -1
        self.resp = []  # answer pieces, read without copying (the harness's memory is not the board's)
        self.roff = 0  # offset into resp[0]
        self.closed = False

    # -- the socket side -------------------------------------------------------------------
    def _send(self, data):
        n = len(data)
        if n > self.room:
            n = self.room
        self.room -= n
        self._deliver(data[:n])
        return n

    def _deliver(self, data):
        srv = self.srv
        i = 0
        n = len(data)
        while i < n:
            if self.body_left < 0:
                b = data[i]
                i += 1
                self.head.append(b)
                if len(self.head) > 2048:
                    raise OSError(104, "head too long")
                if b == 10 and self.head[-4:] == b"\r\n\r\n":
                    self._parse_head()
            else:
                take = n - i
                if take > self.body_left:
                    take = self.body_left
                i += take
                self.body_left -= take
                srv.bytes += take
            if self.body_left == 0:
                self._answer()

    def _parse_head(self):
        length = 0
        for line in bytes(self.head).split(b"\r\n"):
            low = line.lower()
            if low.startswith(b"content-length:"):
                length = int(line[15:])
            elif low.startswith(b"x-sequence:"):
                self.seq = int(line[11:])
        self.head = bytearray()
        self.body_left = length

    def _answer(self):
        srv = self.srv
        seq = self.seq
        bit = 1 << (seq & 7)
        dup = bool(srv.seen[seq >> 3] & bit)
        if dup:
            srv.duplicates += 1
        else:
            srv.seen[seq >> 3] |= bit
            srv.rows += 1
        body = '{"status":"%s","duplicate":%s,"device_id":"esp32-heap","sequence":%d}' % (
            "duplicate" if dup else "stored",
            "true" if dup else "false",
            seq,
        )
        self.resp.append(b"HTTP/1.1 200 OK\r\n")
        if srv.extra_headers:
            self.resp.append(srv.extra_headers)  # made a line at a time by _take
        self.resp.append(
            (
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            ).encode()
        )
        self.body_left = -1
        self.seq = -1

    # -- the stream side (what the firmware calls) -----------------------------------------
    def write(self, buf):
        if not self.out:
            n = self._send(buf)
            if n == len(buf):
                return
            buf = buf[n:]
        self.out = self.out + bytes(buf)  # the copy MicroPython's Stream.write makes

    async def drain(self):
        while self.out:
            await net_wait()  # the network takes the send buffer
            self.meter.sample()
            self.room = SNDBUF
            mv = memoryview(self.out)
            off = 0
            while off < len(mv):
                n = self._send(mv[off:])
                off += n
                if off < len(mv):
                    await net_wait()
                    self.meter.sample()
                    self.room = SNDBUF
            self.out = b""
        await net_wait()
        self.meter.sample()
        self.room = SNDBUF

    async def _wait_resp(self):
        await net_wait()
        while not self.resp and not self.closed:
            await net_wait()
        self.room = SNDBUF
        self.meter.sample()

    def _take(self, n):
        if not self.resp:
            return b""
        piece = self.resp[0]
        if isinstance(piece, int):  # header lines still to make: the next one, a few bytes
            self.resp[0] = piece - 1
            if piece == 1:
                self.resp.pop(0)
            piece = b"X-Proxy-Hop-%d: edge\r\n" % piece
            self.resp.insert(0, piece)
        off = self.roff
        if n > len(piece) - off:
            n = len(piece) - off
        self.roff = off + n
        if self.roff == len(piece):
            self.resp.pop(0)
            self.roff = 0
        return memoryview(piece)[off : off + n]

    async def read(self, n):
        await self._wait_resp()
        return bytes(self._take(n))

    async def readinto(self, buf):
        await self._wait_resp()
        n = 0
        while n < len(buf) and self.resp:
            d = self._take(len(buf) - n)
            buf[n : n + len(d)] = d
            n += len(d)
        return n

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


class Hal:
    """The board HAL for this test: console lines in memory, the fake network, the real heap."""

    def __init__(self, server, meter, stored=None):
        self.stored = stored
        self.server = server
        self.meter = meter
        self.t = {"results": 0, "ok": 0, "errors": 0, "mem_errors": 0, "done": None, "lines": 0}
        self.first_errors = []
        self.replies = {}
        self.done = asyncio.Event()

    def write_line(self, data):
        # Ask for a collection at every console line too: this port runs it at the next event
        # loop turn, which is as close as it gets to a board's collect-when-needed.
        gc.collect()
        t = self.t
        t["lines"] += 1
        if TRACE:
            print("line %d free %d lowest %d" % (t["lines"], free_now(), self.meter.lowest))
        if b'"t":"result' in data:
            n = data.count(b'"seq":')
            t["results"] += n
            t["ok"] += data.count(b'"error":null')
            t["errors"] += n - data.count(b'"error":null')
            t["mem_errors"] += data.count(b"MemoryError")
            if n != data.count(b'"error":null') and len(self.first_errors) < 3:
                self.first_errors.append(bytes(data[:300]))
            return
        msg = json.loads(data)
        if "MemoryError" in data.decode():
            t["mem_errors"] += 1
            if len(self.first_errors) < 3:
                self.first_errors.append(bytes(data[:300]))
        if msg.get("id") is not None:
            self.replies[msg["id"]] = msg
        if msg["t"] == "done":
            t["done"] = msg
            self.done.set()

    def monotonic_us(self):
        return time.ticks_us()

    async def open_connection(self, host, port, ssl=None):
        self.server.connects += 1
        c = Conn(self.server, self.meter)
        return c, c

    async def readline(self):
        return b""

    def unique_id(self):
        return b"\x24\x0a\xc4\x00\x00\x07"

    def mac(self):
        return "24:0a:c4:00:00:07"

    def chip(self):
        return "ESP32"

    def platform(self):
        return "%d.%d.%d" % sys.implementation.version[:3]

    def read_file(self, name):
        return self.stored  # the provisioned config, as `scfleet hw flash` leaves it

    def write_file(self, name, text):
        pass

    def wifi_info(self):
        return {}

    def wifi_connected(self):
        return True

    async def wifi_connect(self, ssid, key, timeout_s):
        return True

    def wifi_disconnect(self):
        pass

    def i2s_open(self, *a):
        raise OSError("no I2S")

    def mem_free(self):
        return free_now()

    def mem_total(self):
        gc.collect()
        return free_now() + gc.mem_alloc()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)


class Lines:
    """The host: config, start, then wait for `done`, then exit."""

    def __init__(self, hal, cmds, limit_ms):
        self.hal = hal
        self.cmds = cmds
        self.limit_ms = limit_ms

    async def readline(self):
        await asyncio.sleep_ms(0)
        if not self.cmds:
            return b""
        c = self.cmds.pop(0)
        if c == "wait":  # bounded: a dead run must not hang the test
            t0 = time.ticks_ms()
            while not self.hal.done.is_set() and self.hal.replies.get(2, {}).get("t") == "ok":
                if time.ticks_diff(time.ticks_ms(), t0) > self.limit_ms:
                    self.hal.t["timed_out"] = True
                    break
                await asyncio.sleep_ms(20)
            return await self.readline()
        return c


async def run(uploads, concurrency, rate, label, stored=None, answer_headers=0):
    """`stored`: the board's config file (JSON text), read at boot like on a board;
    `answer_headers`: that many more header lines in every answer."""
    server = Server()
    server.extra_headers = answer_headers
    meter = Meter()
    at_boot = meter.lowest
    hal = Hal(server, meter, stored)
    cfg = (
        '{"t":"config","id":1,"target":"http://10.0.0.2:8080/api/esp32/audio/upload",'
        '"device_id":"esp32-heap","concurrency":%d,"buffer_chunks":100,"persist":false}'
        % concurrency
    ).encode()
    # A slow machine may fall behind the schedule: queued synth chunks cost no memory, and the
    # grace period lets every one of them go out, so the counts do not depend on speed.
    start = '{"t":"start","id":2,"rate":%d,"duration_s":%g,"grace_s":300}' % (rate, uploads / rate)
    start = start.encode()
    cmds = [cfg, start, "wait", b'{"t":"status","id":3}', b'{"t":"exit","id":4}']
    a = app.App(hal)
    after_boot = free_now()
    crashed = None
    try:
        await a.main(Lines(hal, cmds, int(uploads * 1000 / rate) + 150000))
    except BaseException as e:  # noqa: BLE001 - reported, the test fails on it
        crashed = "%s: %s" % (type(e).__name__, e)
    a = None
    gc.collect()
    await net_wait()  # this port collects on the way back to JavaScript
    await net_wait()
    st = hal.replies.get(3, {})
    out = {
        "label": label,
        "heap_total": free_now() + gc.mem_alloc(),
        "free_at_boot": at_boot,
        "free_after_app_boot": after_boot,
        "lowest_free": meter.lowest,
        "samples": meter.samples,
        "start_reply": hal.replies.get(2, {}).get("t"),
        "start_error": hal.replies.get(2, {}).get("msg"),
        "produced": st.get("produced"),
        "ok": st.get("ok"),
        "dropped": st.get("dropped"),
        "failed": st.get("failed"),
        "duplicates_fw": st.get("duplicates"),
        "results": hal.t["results"],
        "result_errors": hal.t["errors"],
        "mem_errors": hal.t["mem_errors"],
        "rows": server.rows,
        "duplicates": server.duplicates,
        "connects": server.connects,
        "crashed": crashed,
        "timed_out": hal.t.get("timed_out", False),
        "first_errors": [e.decode() for e in hal.first_errors],
    }
    print("HEAP " + json.dumps(out))
