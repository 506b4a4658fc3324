"""The hardware abstraction: everything the app needs from a board, and nothing more.

The app (app.py) touches hardware only through an object with these members, so the same code
runs on an ESP32 (hal_esp32.Esp32Hal) and under CPython (hal_host.HostHal, used by tests and by
the board emulator). `Hal` documents the interface and holds the shared, pure pieces.

    write_line(data: bytes)                 send one complete line (ends with b"\\n") to the host
    async readline() -> bytes               next host line; b"" at end of input
    monotonic_us() -> int                   board clock in microseconds, never wraps
    open_connection(host, port, ssl)        coroutine -> (reader, writer), asyncio streams
    async wifi_connect(ssid, key, timeout_s) -> bool
    wifi_connected() -> bool
    wifi_disconnect()
    wifi_info() -> dict                     e.g. {"ip": .., "rssi": ..}; never the key
    unique_id() -> bytes; mac() -> str; chip() -> str; platform() -> str (MicroPython version)
    read_file(name) -> str | None; write_file(name, text)   board filesystem (config)
    i2s_open(rate, id, sck, ws, sd) -> mic  `await mic.readinto(buf)` fills buf with 16-bit LE
                                            PCM, -> bytes; raises OSError where there is no mic
    mem_free() -> int | None                free GC heap after a collection (None: not modelled)
    mem_total() -> int | None               the heap a run may use at most (free + allocated)
"""


class Hal:
    chip_name = "unknown"

    def write_line(self, data):
        raise NotImplementedError

    async def readline(self):
        return b""

    def monotonic_us(self):
        raise NotImplementedError

    def ticks_diff(self, a, b):
        return a - b

    def open_connection(self, host, port, ssl=None):
        import asyncio

        if ssl:
            return asyncio.open_connection(host, port, ssl=ssl)
        return asyncio.open_connection(host, port)

    async def wifi_connect(self, ssid, key, timeout_s):
        return True

    def wifi_connected(self):
        return True

    def wifi_disconnect(self):
        pass

    def wifi_info(self):
        return {}

    def unique_id(self):
        return b"\x00\x00\x00\x00\x00\x00"

    def mac(self):
        return format_mac(self.unique_id())

    def chip(self):
        return self.chip_name

    def platform(self):
        return "unknown"

    def read_file(self, name):
        return None

    def write_file(self, name, text):
        raise OSError("no filesystem")

    def i2s_open(self, sample_rate, i2s_id, sck, ws, sd):
        raise OSError("no I2S microphone on this board")

    def mem_free(self):
        return None

    def mem_total(self):
        return None


def format_mac(b):
    return ":".join("%02x" % x for x in b[:6])


class WrapClock:
    """Extends a wrapping tick counter (ESP32 ticks_us wraps every 2**30 us, ~18 min) to one that
    never wraps; it must be read at least once per half period, which the app's loops guarantee."""

    def __init__(self, ticks, ticks_diff):
        self.ticks = ticks
        self.diff = ticks_diff
        self.last = ticks()
        self.total = 0

    def __call__(self):
        now = self.ticks()
        self.total += self.diff(now, self.last)
        self.last = now
        return self.total


def reduce_32_to_16(raw, nraw, out):
    """INMP441 on I2S with 32-bit slots: the sample is 24-bit MSB-aligned in each little-endian
    32-bit word, so its top 16 bits are bytes 2 and 3. -> bytes written to out (nraw // 2)."""
    j = 0
    for i in range(2, nraw, 4):
        out[j] = raw[i]
        out[j + 1] = raw[i + 1]
        j += 2
    return j
