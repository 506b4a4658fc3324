"""SLIP framing as the ESP ROM loader uses it (RFC 1055 with 0xC0 delimiters).

The decoder is incremental because TCP (and a real UART) hands bytes over in arbitrary chunks;
it works on whole chunks with ``bytes.find``/``replace`` instead of a per-byte loop so the
emulator keeps up with many boards streaming megabytes at once.
"""

from __future__ import annotations

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD

_END = b"\xc0"


def encode(payload: bytes) -> bytes:
    """One SLIP frame: delimiter, escaped payload, delimiter."""
    return _END + payload.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + _END


def unescape(body: bytes) -> bytes | None:
    """Undo escaping of one frame body; ``None`` if it holds an invalid escape sequence.

    Escaping guarantees every 0xDB in a valid body starts a pair, so replacing ``DB DC`` first and
    ``DB DD`` second can never join bytes of two different pairs.
    """
    if b"\xdb" not in body:
        return body
    out = body.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
    if out.count(b"\xdb") != body.count(b"\xdb\xdd"):
        return None  # a 0xDB followed by something other than DC/DD, or at the very end
    return out


class SlipDecoder:
    """Turns a byte stream into frames; bytes before the first delimiter are line noise.

    ``feed`` returns complete frames in order. Empty frames (two adjacent delimiters, which
    esptool produces between packets) are skipped; frames with a broken escape are dropped and
    counted in ``bad_frames`` — the ROM silently ignores them too.
    """

    def __init__(self, max_frame: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._synced = False
        self._max_frame = max_frame
        self.bad_frames = 0
        self.noise_bytes = 0

    def reset(self) -> None:
        self._buf.clear()
        self._synced = False

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        start = 0
        if not self._synced:
            idx = buf.find(_END)
            if idx < 0:
                self.noise_bytes += len(buf)
                buf.clear()
                return frames
            self.noise_bytes += idx
            start = idx + 1
            self._synced = True
        while True:
            idx = buf.find(_END, start)
            if idx < 0:
                break
            if idx > start:
                body = unescape(bytes(buf[start:idx]))
                if body is None:
                    self.bad_frames += 1
                else:
                    frames.append(body)
            start = idx + 1
        del buf[:start]
        if len(buf) > self._max_frame:  # runaway frame without delimiter: resynchronise
            self.bad_frames += 1
            buf.clear()
            self._synced = False
        return frames
