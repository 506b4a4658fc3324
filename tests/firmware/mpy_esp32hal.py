# ruff: noqa: UP031  (MicroPython script, run by mpy_run.mjs with fakes/machine.py, fakes/network.py)
# The board-only HAL under real MicroPython, against fake `machine`/`network` modules and fake
# console streams: what can be checked without an ESP32.
import sys

sys.path.insert(0, "/")

import asyncio  # noqa: E402
import socket  # noqa: E402
from asyncio import core  # noqa: E402

import machine  # noqa: E402
import network  # noqa: E402
from scfw import hal_esp32, http  # noqa: E402


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class FakeIn:
    """Console bytes: `read(1)` returns what is there; the poller says whether more is."""

    def __init__(self, data):
        self.buf = bytes(data)
        self.pos = 0

    @property
    def data(self):
        return self.pos < len(self.buf)

    def read(self, n):
        d = self.buf[self.pos : self.pos + n]
        self.pos += len(d)
        return d


class FakeReader:
    def __init__(self, src):
        self.src = src

    async def read(self, n):
        await asyncio.sleep(0)
        return self.src.read(n)


class FakePoll:
    def __init__(self, src):
        self.src = src

    def poll(self, timeout):
        return [1] if self.src.data else []


class Out:
    def __init__(self):
        self.data = bytearray()

    def write(self, b):
        self.data.extend(b)


class FakeStream:
    """I2S samples as 32-bit LE slots: sample i is i << 16 (so its top 16 bits are i)."""

    def __init__(self):
        self.i = 0

    async def readinto(self, buf):
        n = len(buf) - len(buf) % 4
        for j in range(0, n, 4):
            v = (self.i & 0xFFFF) << 16
            buf[j] = 0
            buf[j + 1] = 0
            buf[j + 2] = (v >> 16) & 0xFF
            buf[j + 3] = (v >> 24) & 0xFF
            self.i += 1
        return n


class FakeIOQueue:
    """MicroPython's asyncio I/O queue (`asyncio.core._io_queue` on a board; this port has none):
    a task that waits for a socket to become writable parks here, as on a board, until the fake
    network says the connect is done; `Task.cancel` takes it out through `remove`, as it does
    from the real queue."""

    def __init__(self):
        self.waiting = []  # [socket, task]

    def queue_write(self, s):
        core.cur_task.data = self
        self.waiting.append([s, core.cur_task])

    def remove(self, task):
        self.waiting = [w for w in self.waiting if w[1] is not task]

    def connected(self, s):
        for w in self.waiting:
            if w[0] is s:
                self.waiting.remove(w)
                core._task_queue.push(w[1])
                return
        raise AssertionError("nobody waits for that socket")


class SocketStream:
    """MicroPython's asyncio Stream over a socket (this port has no asyncio.stream): its
    wait_closed() is what closes the socket."""

    def __init__(self, s):
        self.s = s

    def close(self):
        pass

    async def wait_closed(self):
        self.s.close()


def micropython_open_connection(host, port, ssl=None):
    """What MicroPython 1.27's asyncio.open_connection does (extmod/asyncio/stream.py), on the
    fakes: makes the socket, starts a non-blocking connect, waits on the I/O queue for it to be
    writable and wraps it in a Stream. Nothing there closes the socket if that wait is cancelled
    or the connect fails at once. (The HAL used it until the board's connect owned its socket.)"""
    import errno

    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], ai[1], ai[2])
    s.setblocking(False)
    try:
        s.connect(ai[-1])
    except OSError as e:
        if e.errno != errno.EINPROGRESS:
            raise
    if ssl:  # a context (the tests pass one): wrapped before the wait, the handshake deferred
        s = ssl.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
        s.setblocking(False)
    st = SocketStream(s)
    yield core._io_queue.queue_write(getattr(s, "raw", s))  # the fake TLS socket's own socket
    return st, st


async def turns(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def check_connect(h):
    """The board's connect: TCP_NODELAY on a connection made (issue 13 item 5), and no socket
    left open by a connect that is cancelled, times out in the client or fails at once."""
    io = FakeIOQueue()
    core._io_queue = io
    asyncio.StreamWriter = SocketStream
    asyncio.open_connection = micropython_open_connection

    async def connecting():
        n = len(socket.made)
        t = asyncio.create_task(h.open_connection("10.0.0.2", 8080))
        await turns(3)
        check(len(socket.made) == n + 1 and len(io.waiting) == 1, "not connecting")
        return t, socket.made[-1]

    t, s = await connecting()
    io.connected(s)
    _r, w = await t
    check(w.s is s and not s.closed and s.peer == ("10.0.0.2", 8080), "the stream is the socket")
    check(s.opts == [(6, 1, 1)], "TCP_NODELAY set: %r" % (s.opts,))
    await http.close_stream(w)
    check(s.closed, "closing the stream closes the socket")
    print("PASS esp32_nodelay")

    t, s = await connecting()
    t.cancel()
    await turns(3)
    check(t.done(), "the cancelled connect never ended")
    try:
        await t
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the cancelled connect returned")
    check(s.closed, "a connect cancelled while connecting left its socket open")
    check(not io.waiting, "a cancelled connect still waits on the I/O queue")
    print("PASS esp32_connect_cancelled")

    n = len(socket.made)
    c = http.Client("http://10.0.0.2:8080/up", h.open_connection, True, 0.05)
    try:
        await c.request("POST", [], [b"x"], 1)
    except OSError as e:
        check("timeout" in str(e), str(e))
    else:
        raise AssertionError("a connect that never completes did not time out")
    check(len(socket.made) == n + 1, "one connect")
    check(socket.made[-1].closed, "a connect timed out by the client left its socket open")
    print("PASS esp32_connect_timeout")

    n = len(socket.made)
    socket.socket.fail_errno = 113  # EHOSTUNREACH, at once
    try:
        await h.open_connection("10.0.0.2", 8080)
    except OSError as e:
        check(e.errno == 113, repr(e))
    else:
        raise AssertionError("a failed connect returned")
    finally:
        socket.socket.fail_errno = 0
    check(len(socket.made) == n + 1, "one connect")
    check(socket.made[-1].closed, "a connect that failed at once left its socket open")
    print("PASS esp32_connect_failed")

    class TlsSocket:
        def __init__(self, raw, host, handshake_now):
            self.raw = raw
            self.host = host
            self.handshake_now = handshake_now

        def setblocking(self, flag):
            pass

        def close(self):
            self.raw.close()

    class Context:
        def __init__(self, fail):
            self.fail = fail

        def wrap_socket(self, s, server_hostname=None, do_handshake_on_connect=True):
            if self.fail:
                raise OSError(12)  # ENOMEM: mbedTLS's buffers did not fit in the heap
            return TlsSocket(s, server_hostname, do_handshake_on_connect)

    async def tls(ctx):
        n = len(socket.made)
        t = asyncio.create_task(h.open_connection("sc.example", 443, ctx))
        await turns(3)
        check(len(socket.made) == n + 1 and len(io.waiting) == 1, "TLS: not connecting")
        io.connected(socket.made[-1])
        return await t

    _r, w = await tls(Context(False))
    s = socket.made[-1]
    check(w.s.raw is s and w.s.host == "sc.example" and not w.s.handshake_now, "TLS stream")
    check(s.opts == [(6, 1, 1)] and not s.closed, "TLS: TCP_NODELAY on its socket")
    await http.close_stream(w)
    check(s.closed, "closing a TLS stream closes its socket")
    try:
        await tls(Context(True))
    except OSError as e:
        check(e.errno == 12, repr(e))
    else:
        raise AssertionError("a failed TLS wrap returned")
    check(socket.made[-1].closed, "a TLS wrap that failed left its socket open")
    print("PASS esp32_connect_tls")


async def main():
    long = b"y" * 5000
    src = FakeIn(
        b'{"t":"hello","id":1}\r\n{"t":"st'
        + b'atus","id":2}\n'
        + long
        + b"\n"
        + b'{"t":"ping","id":3}\n'
    )
    out = Out()
    h = hal_esp32.Esp32Hal(stdin=src, stdout=out, reader=FakeReader(src), poller=FakePoll(src))
    check(await h.readline() == b'{"t":"hello","id":1}\r\n', "line 1")
    check(await h.readline() == b'{"t":"status","id":2}\n', "line 2")
    over = await h.readline()
    check(len(over) > 4096 and over.startswith(b"yyyy"), "overlong line handed over once")
    check(await h.readline() == b'{"t":"ping","id":3}\n', "line after the overlong one")
    print("PASS esp32_readline")

    # Issue 13 item 4: a 100 KB line in one burst (native USB): the poll loop must stop at
    # MAX_LINE instead of reading the whole burst into memory.
    burst = FakeIn(b"z" * 100000 + b'\n{"t":"ping","id":4}\n')
    h2 = hal_esp32.Esp32Hal(
        stdin=burst, stdout=Out(), reader=FakeReader(burst), poller=FakePoll(burst)
    )
    over = await h2.readline()
    check(4096 < len(over) <= 4096 + 2, "overlong head bounded, got %d bytes" % len(over))
    check(await h2.readline() == b'{"t":"ping","id":4}\n', "the next line after the burst")
    print("PASS esp32_burst")

    await check_connect(h)

    h.write_line(b'{"t":"log"}\n')
    check(bytes(out.data) == b'{"t":"log"}\n', "write_line")
    a = h.monotonic_us()
    await asyncio.sleep(0.01)
    b = h.monotonic_us()
    check(b - a >= 5000, "monotonic clock advances")
    check(h.unique_id() == b"\x24\x0a\xc4\xaa\xbb\xcc", "uid")
    check(h.mac() == "24:0a:c4:01:02:03", "mac from WLAN")
    check(h.platform() == "%d.%d.%d" % sys.implementation.version[:3], "platform")
    check(isinstance(h.chip(), str) and h.chip(), "chip")
    print("PASS esp32_identity")

    h.write_file("scfw_test.json", '{"a":1}')
    h.write_file("scfw_test.json", '{"a":2}')
    check(h.read_file("scfw_test.json") == '{"a":2}', "fs roundtrip")
    check(h.read_file("nope.json") is None, "missing file")
    print("PASS esp32_fs")

    check(not h.wifi_connected(), "not connected before connect")
    check(await h.wifi_connect("lab", "k", 5), "connects")
    check(h.wifi_connected() and h.wifi_info()["ip"] == "192.168.4.2", "info")
    network.WLAN.fail = True
    check(not h.wifi_connected(), "drop seen")
    check(not await h.wifi_connect("lab", "k", 0.3), "connect times out")
    network.WLAN.fail = False
    print("PASS esp32_wifi")

    i2s = machine.I2S(0)
    mic = hal_esp32._Mic(i2s, FakeStream())
    buf = bytearray(3000)
    n = await mic.readinto(buf)
    check(n == 3000, "fills the buffer")
    for k in range(0, 1500):
        v = buf[2 * k] | (buf[2 * k + 1] << 8)
        check(v == k, "sample %d is %d" % (k, v))
    mic.close()
    check(i2s.closed, "deinit")
    print("PASS esp32_i2s")


done = asyncio.Event()


async def wrap():
    try:
        await main()
    except BaseException as e:
        print("FAIL esp32: %s: %s" % (type(e).__name__, e))
    done.set()


asyncio.create_task(wrap())
await done.wait()  # noqa: F704
