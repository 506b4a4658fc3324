"""MicroPython's raw REPL from the host: what ``hw deploy`` speaks to put files on a board.

The protocol is the one mpremote uses (``shared/runtime/pyexec.c``): Ctrl-A enters the raw REPL
(``raw REPL; CTRL-B to exit\\r\\n>``); code followed by Ctrl-D runs and is answered ``OK``,
its output, ``\\x04``, the error text, ``\\x04`` and ``>``. Raw-paste mode (``\\x05A\\x01``) adds
flow control — the board answers ``R\\x01`` and a 2-byte window, then sends ``\\x01`` whenever
another window fits its stdin buffer — so big chunks go at line rate without overrunning a real
board's UART buffer; a board answering ``R\\x00`` gets plain raw REPL, paced like mpremote
(256 bytes per 10 ms). Ctrl-B goes back to the friendly REPL, where Ctrl-D soft-resets and runs
``main.py``; Ctrl-D on an empty raw-REPL line soft-resets *without* ``main.py``.

Plain functions taking the open pyserial port first (esptool style). They raise
:class:`ReplError` with a one-line message; callers add the port name.
"""

from __future__ import annotations

import time
from typing import Any

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"soft reboot\r\n"
PLAIN_CHUNK = 256  # plain raw REPL: bytes per write, then a pause (no flow control there)
PLAIN_PAUSE = 0.01


class ReplError(Exception):
    """The board did not answer as a MicroPython REPL should (or stopped answering)."""


class ReplExecError(ReplError):
    """Code ran on the board and raised; the message is the traceback's last line."""

    def __init__(self, traceback_text: str) -> None:
        lines = [ln for ln in traceback_text.strip().splitlines() if ln.strip()]
        super().__init__(lines[-1].strip() if lines else "error")
        self.traceback = traceback_text


def read_until(ser: Any, ending: bytes, timeout: float, what: str) -> bytes:
    """Bytes up to and including ``ending``; :class:`ReplError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while not buf.endswith(ending):
        if time.monotonic() > deadline:
            raise ReplError(f"board stopped answering ({what}; no reply in {timeout:g} s)")
        c = ser.read(1)
        if c:
            buf += c
    return bytes(buf)


def stop_app(ser: Any, timeout: float) -> bool:
    """Send the firmware protocol's ``exit`` (its app ignores Ctrl-C); True if it acknowledged.

    A board already at a REPL just evaluates the line (a dict literal), which is harmless.
    """
    ser.write(b'{"t":"exit","id":"deploy"}\n')
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while time.monotonic() < deadline:
        buf += ser.read(max(1, getattr(ser, "in_waiting", 0) or 1))
        if b'"cmd":"exit"' in buf or b">>> " in buf or buf.endswith(b">"):
            break
    time.sleep(0.05)  # let the app return to the REPL before Ctrl-C
    return b'"cmd":"exit"' in buf


def enter_raw_repl(ser: Any, timeout: float) -> None:
    """Interrupt whatever runs and enter the raw REPL (the ``>`` prompt stays unread)."""
    for attempt in range(2):
        ser.write(b"\r\x03\x03")
        time.sleep(0.05)
        ser.reset_input_buffer()
        ser.write(b"\r\x01")
        try:
            read_until(ser, RAW_BANNER, timeout, "entering the raw REPL")
            return
        except ReplError:
            if attempt:
                raise


def exec_raw(
    ser: Any, code: str | bytes, timeout: float, *, raw_paste: bool = True
) -> tuple[bytes, bool]:
    """Run ``code`` in the raw REPL: (its output, whether raw-paste mode carried it).

    Raises :class:`ReplExecError` when the code raised on the board.
    """
    data = code.encode() if isinstance(code, str) else code
    read_until(ser, b">", timeout, "waiting for the raw REPL prompt")
    used_paste = False
    if raw_paste:
        ser.write(b"\x05A\x01")
        answer = _read_exact(ser, 2, timeout, "asking for raw-paste mode")
        if answer == b"R\x01":
            _paste(ser, data, timeout)
            used_paste = True
        elif answer != b"R\x00":  # firmware before raw-paste: it reset the raw REPL instead
            read_until(ser, RAW_BANNER + b">", timeout, "falling back to the raw REPL")
    if not used_paste:
        for i in range(0, len(data), PLAIN_CHUNK):
            ser.write(data[i : i + PLAIN_CHUNK])
            time.sleep(PLAIN_PAUSE)
        ser.write(b"\x04")
        read_until(ser, b"OK", timeout, "waiting for OK")  # after "R\x00" a ">" may come first
    out = read_until(ser, b"\x04", timeout, "running code")[:-1]
    err = read_until(ser, b"\x04", timeout, "reading the error text")[:-1]
    if err.strip():
        raise ReplExecError(err.decode("utf-8", "replace"))
    return out, used_paste


def _read_exact(ser: Any, n: int, timeout: float, what: str) -> bytes:
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        if time.monotonic() > deadline:
            raise ReplError(f"board stopped answering ({what}; no reply in {timeout:g} s)")
        buf += ser.read(n - len(buf))
    return bytes(buf)


def _paste(ser: Any, data: bytes, timeout: float) -> None:
    """Send ``data`` in raw-paste mode, within the windows the board grants."""
    window = int.from_bytes(_read_exact(ser, 2, timeout, "reading the raw-paste window"), "little")
    if window == 0:
        raise ReplError("board offered a raw-paste window of 0 bytes")
    remain = window
    i = 0
    while i < len(data):
        deadline = time.monotonic() + timeout
        while remain == 0 or ser.in_waiting:
            c = ser.read(1)
            if c == b"\x01":
                remain += window
            elif c == b"\x04":  # the board ended the paste early (e.g. a syntax error)
                ser.write(b"\x04")
                return
            elif c:
                raise ReplError(f"unexpected {c!r} from the board during raw paste")
            elif time.monotonic() > deadline:
                raise ReplError(
                    f"board stopped answering (raw paste: no window granted in {timeout:g} s)"
                )
        chunk = data[i : i + remain]
        ser.write(chunk)
        remain -= len(chunk)
        i += len(chunk)
    ser.write(b"\x04")
    read_until(ser, b"\x04", timeout, "ending the raw paste")


def write_file(
    ser: Any, path: str, data: bytes, timeout: float, *, raw_paste: bool = True, chunk: int = 2048
) -> bool:
    """Write ``data`` to ``path`` on the board: to ``path.tmp`` in chunks, then renamed over.

    The rename keeps the old file whole if the transfer dies half way. Returns whether
    raw-paste mode was used.
    """
    tmp = path + ".tmp"
    _, used = exec_raw(ser, f"f=open({tmp!r},'wb')\nw=f.write", timeout, raw_paste=raw_paste)
    raw_paste = used
    for i in range(0, len(data), chunk):
        part = data[i : i + chunk]
        lines = "\n".join(f"w({part[j : j + 512]!r})" for j in range(0, len(part), 512))
        exec_raw(ser, lines, timeout, raw_paste=raw_paste)
    exec_raw(
        ser,
        "f.close()\nimport os\n"
        f"if os.stat({tmp!r})[6]!={len(data)}:\n raise OSError('short write')\n"
        f"try:\n os.rename({tmp!r},{path!r})\n"
        f"except OSError:\n os.remove({path!r})\n os.rename({tmp!r},{path!r})",
        timeout,
        raw_paste=raw_paste,
    )
    return used


HASH_SCRIPT = """\
import os
try:
 import hashlib, binascii
except ImportError:
 hashlib = None
def _h(p):
 try:
  n = os.stat(p)[6]
 except OSError:
  return '-'
 if hashlib is None or not hasattr(hashlib, 'sha256'):
  return 's:%d' % n
 d = hashlib.sha256()
 with open(p, 'rb') as f:
  while True:
   b = f.read(1024)
   if not b:
    break
   d.update(b)
 return 'h:' + binascii.hexlify(d.digest()).decode()
for _p in {paths!r}:
 print(_h(_p))
"""


def file_digests(
    ser: Any, paths: list[str], timeout: float, *, raw_paste: bool = True
) -> tuple[dict[str, str | None], bool]:
    """What the board holds at each path: ``h:<sha256>``, ``s:<size>`` without hashlib, or None.

    Hashes are computed on the board; no file content comes back.
    """
    out, used = exec_raw(ser, HASH_SCRIPT.format(paths=paths), timeout, raw_paste=raw_paste)
    values = out.decode("utf-8", "replace").split()
    if len(values) != len(paths):
        raise ReplError(f"board answered {len(values)} digests for {len(paths)} files")
    return {p: (None if v == "-" else v) for p, v in zip(paths, values, strict=True)}, used


def make_dirs(ser: Any, dirs: list[str], timeout: float, *, raw_paste: bool = True) -> None:
    """Create each directory (parents first) unless it exists."""
    if dirs:
        code = f"import os\nfor d in {dirs!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
        exec_raw(ser, code, timeout, raw_paste=raw_paste)


def leave_raw_repl(ser: Any, timeout: float) -> None:
    """Ctrl-B: back to the friendly REPL (its banner and ``>>> ``)."""
    ser.write(b"\x02")
    read_until(ser, b">>> ", timeout, "leaving the raw REPL")


def soft_reset(ser: Any, timeout: float) -> None:
    """Ctrl-D at the friendly REPL: MicroPython reboots and runs ``main.py``."""
    ser.write(b"\x04")
    read_until(ser, SOFT_REBOOT, timeout, "soft reset")


def soft_reset_raw(ser: Any, timeout: float) -> None:
    """Ctrl-D on an empty raw-REPL line: reboot *without* ``main.py``, back in the raw REPL."""
    read_until(ser, b">", timeout, "waiting for the raw REPL prompt")
    ser.write(b"\x04")
    read_until(ser, SOFT_REBOOT, timeout, "soft reset")
    read_until(ser, RAW_BANNER, timeout, "soft reset")
