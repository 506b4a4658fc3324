# ruff: noqa: UP031  (MicroPython script, run by mpy_run.mjs with fakes/machine.py, fakes/network.py)
# The board-only HAL under real MicroPython, against fake `machine`/`network` modules and fake
# console streams: what can be checked without an ESP32.
import sys

sys.path.insert(0, "/")

import asyncio  # noqa: E402

import machine  # noqa: E402
import network  # noqa: E402
from scfw import hal_esp32  # noqa: E402


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

    # Issue 13 item 5: TCP_NODELAY on the board's sockets.
    class Sock:
        def __init__(self):
            self.opts = []

        def setsockopt(self, level, opt, value):
            self.opts.append((level, opt, value))

    class Writer:
        def __init__(self):
            self.s = Sock()

    async def fake_open(host, port, ssl=None):
        return object(), Writer()

    asyncio.open_connection = fake_open
    _r, w = await h.open_connection("10.0.0.2", 8080)
    check(w.s.opts == [(6, 1, 1)], "TCP_NODELAY set: %r" % (w.s.opts,))
    print("PASS esp32_nodelay")

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
