"""HAL for a real ESP32 / ESP32-S3 / ESP32-C3 running MicroPython >= 1.22 (board only).

Serial: the USB/UART REPL console carries the protocol. Input is read without blocking the event
loop: one byte through asyncio.StreamReader(stdin) (waits for readable), then whatever poll says
is already there, so a half-written line from the host never stalls the uploads.
Ctrl-C is disabled by the app (micropython.kbd_intr(-1)) so a 0x03 byte is data; the `exit`
command is the way back to the REPL (or the bridge's raw-REPL entry after a reset).
"""

import asyncio
import gc
import os
import select
import sys
import time

import machine
import micropython

from .hal import Hal, WrapClock, format_mac, reduce_32_to_16
from .proto import MAX_LINE


class _Mic:
    """INMP441 on machine.I2S: 32-bit MONO slots, 24-bit samples MSB-aligned, kept as top 16 bits."""

    def __init__(self, i2s, stream=None):
        self.i2s = i2s
        self.stream = stream or asyncio.StreamReader(i2s)
        self.raw = bytearray(2048)

    async def readinto(self, out):
        n = len(out) - (len(out) & 1)
        pos = 0
        raw = self.raw
        mv = memoryview(out)
        while pos < n:
            want = (n - pos) * 2
            if want > len(raw):
                want = len(raw)
            got = await self.stream.readinto(memoryview(raw)[:want])
            got -= got & 3
            pos += reduce_32_to_16(raw, got, mv[pos:])
        return pos

    def close(self):
        self.i2s.deinit()


def _writable(s):
    # Parks the task on MicroPython's asyncio I/O queue until `s` is writable (a non-blocking
    # connect is done), as asyncio's own streams wait; a cancel takes it off the queue.
    from asyncio import core  # type: ignore[attr-defined]

    yield core._io_queue.queue_write(s)


def _tls(s, ssl, host):
    """`s` wrapped for TLS; the handshake runs in the first reads and writes, without blocking."""
    if ssl is True:
        import ssl as _ssl

        ssl = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
    s = ssl.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
    s.setblocking(False)
    return s


class Esp32Hal(Hal):
    """The arguments are test seams (fake console streams); on a board none is given."""

    def __init__(self, stdin=None, stdout=None, reader=None, poller=None):
        self._clock = WrapClock(time.ticks_us, time.ticks_diff)
        self._out = stdout or getattr(sys.stdout, "buffer", sys.stdout)
        self._in = stdin or getattr(sys.stdin, "buffer", sys.stdin)
        self._reader = reader
        self._poll = poller
        self._pending = bytearray()
        self._skipping = False
        self.wlan = None

    def kbd_intr(self, on):
        micropython.kbd_intr(3 if on else -1)

    def write_line(self, data):
        self._out.write(data)

    async def readline(self):
        if self._reader is None:
            self._reader = asyncio.StreamReader(self._in)
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self._in, select.POLLIN)
        while True:
            buf = self._pending
            i = buf.find(b"\n")
            if i >= 0:
                line = bytes(buf[: i + 1])
                self._pending = buf[i + 1 :]
                if self._skipping:
                    self._skipping = False
                    continue
                return line
            if len(buf) > MAX_LINE:
                # An overlong line: hand its head to the parser (it answers "too_long") and drop
                # the rest up to the next newline, so memory stays bounded.
                self._pending = bytearray()
                if self._skipping:
                    continue
                self._skipping = True
                return bytes(buf)
            ch = await self._reader.read(1)
            if isinstance(ch, str):
                ch = ch.encode()
            buf.extend(ch)
            # Take what is already there without waiting, but never more than one line's worth:
            # a native-USB board (S3, C3) gets a 100 KB paste in one burst.
            while len(buf) <= MAX_LINE and self._poll.poll(0):
                c = self._in.read(1)
                if not c:
                    break
                if isinstance(c, str):
                    c = c.encode()
                buf.extend(c)
                if c == b"\n":
                    break

    def monotonic_us(self):
        return self._clock()

    async def open_connection(self, host, port, ssl=None):
        """A TCP (or TLS) connection as an asyncio stream, on a socket this call owns: closed if
        anything ends the connect, a cancel or the client's timeout included. MicroPython's
        asyncio.open_connection closes nothing then (extmod/asyncio/stream.py), and a board has
        ~10 sockets and a small heap to wait for a collection in. TCP_NODELAY: the head and the
        body slices are separate writes, and with Nagle each waits for the server's delayed ACK
        (~40 ms a request)."""
        import socket
        from errno import EINPROGRESS

        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]  # blocks, as asyncio's does
        s = socket.socket(ai[0], ai[1], ai[2])
        try:
            s.setblocking(False)
            try:
                s.connect(ai[-1])
            except OSError as e:
                if e.errno != EINPROGRESS:
                    raise
            await _writable(s)  # connected, or failed: then the first drain()/read() says why
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if ssl:
                s = _tls(s, ssl, host)
            stream = asyncio.StreamWriter(s)  # MicroPython's Stream both reads and writes
        except BaseException:
            s.close()
            raise
        return stream, stream

    def _wlan(self):
        if self.wlan is None:
            import network

            self.wlan = network.WLAN(network.STA_IF)
        return self.wlan

    async def wifi_connect(self, ssid, key, timeout_s):
        w = self._wlan()
        w.active(True)
        try:
            w.disconnect()
        except OSError:
            pass
        w.connect(ssid, key)
        t0 = time.ticks_ms()
        while not w.isconnected():
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_s * 1000:
                return False
            await asyncio.sleep(0.2)
        return True

    def wifi_connected(self):
        return self.wlan is not None and self.wlan.isconnected()

    def wifi_disconnect(self):
        if self.wlan is not None:
            self.wlan.disconnect()

    def wifi_info(self):
        if not self.wifi_connected():
            return {}
        d = {"ip": self.wlan.ifconfig()[0]}
        try:
            d["rssi"] = self.wlan.status("rssi")
        except Exception:
            pass
        return d

    def unique_id(self):
        return machine.unique_id()

    def mac(self):
        try:
            return format_mac(self._wlan().config("mac"))
        except Exception:
            return format_mac(self.unique_id())

    def chip(self):
        m = sys.implementation._machine  # e.g. "Generic ESP32S3 module with ESP32S3"
        return m.rsplit(" with ", 1)[-1] if " with " in m else m

    def platform(self):
        return "%d.%d.%d" % sys.implementation.version[:3]

    def read_file(self, name):
        try:
            with open("/" + name) as f:
                return f.read()
        except OSError:
            return None

    def write_file(self, name, text):
        tmp = "/" + name + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        try:
            os.remove("/" + name)
        except OSError:
            pass
        os.rename(tmp, "/" + name)

    def i2s_open(self, sample_rate, i2s_id, sck, ws, sd):
        from machine import I2S, Pin

        i2s = I2S(
            i2s_id,
            sck=Pin(sck),
            ws=Pin(ws),
            sd=Pin(sd),
            mode=I2S.RX,
            bits=32,
            format=I2S.MONO,
            rate=sample_rate,
            ibuf=8192,
        )
        return _Mic(i2s)

    def mem_free(self):
        # With the split heap (MicroPython >= 1.21 on ESP32) this includes what the heap may
        # still grow by, which is what a run can count on.
        gc.collect()
        return gc.mem_free()

    def mem_total(self):
        gc.collect()
        return gc.mem_free() + gc.mem_alloc()
