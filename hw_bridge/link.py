"""A board's serial console as JSON lines, usable from asyncio without blocking the loop.

pyserial is blocking and pyserial-asyncio is not a dependency, so each open port has one reader
thread (``read`` with a short timeout) that splits bytes into lines and hands decoded messages to
the event loop with ``call_soon_threadsafe``; writes go through a one-thread executor per port so
they keep their order. Whatever arrives — boot ROM text, a traceback, line noise, half a line,
a megabyte without a newline — becomes a ``text`` line or is dropped and counted; nothing on the
wire can raise in the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from hw_bridge.threads import run_owned
from scfleet_core.errors import HardwareError

MAX_LINE = 16384  # the protocol's lines are <= 4096 bytes; a batch of results can be longer
DEFAULT_BAUD = 115200
READ_TIMEOUT = 0.1


class LineSplitter:
    """Bytes in, complete lines out; an over-long line is discarded up to its newline."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False
        self.dropped = 0  # over-long lines thrown away

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_line:
                    if not self._skipping:
                        self.dropped += 1
                    self._skipping = True
                    self._buf.clear()
                return lines
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > self.max_line:
                self.dropped += 1
                continue
            lines.append(line.rstrip(b"\r"))


def decode_line(line: bytes) -> dict[str, Any] | str:
    """A protocol object, or the line as printable text (anything else on the console)."""
    stripped = line.strip()
    if stripped.startswith(b"{"):
        try:
            obj = json.loads(stripped)
        except (ValueError, UnicodeDecodeError, RecursionError):
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("t"), str):
            return obj
    text = line.decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() or ch == "\t" else "\ufffd" for ch in text)


class BoardReplyError(Exception):
    """The board answered a command with an ``error`` line."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class BoardLink(Protocol):
    """A board's console as the fleet uses it: :class:`SerialLink` on a real or emulated port,
    ``hw_bridge.testing.FakeLink`` in tests."""

    url: str
    last_rx: float
    closed_reason: str | None

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def shutdown(self) -> None: ...

    async def request(self, t: str, timeout: float = 2.0, **fields: Any) -> dict[str, Any]: ...


class LinkFactory(Protocol):
    """Makes the link to one board (``SerialLink`` itself is one)."""

    def __call__(
        self,
        url: str,
        *,
        baud: int = DEFAULT_BAUD,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        on_text: Callable[[str], None] | None = None,
        on_closed: Callable[[str], None] | None = None,
    ) -> BoardLink: ...


class SerialLink:
    """One open port: ``request()`` for commands, ``on_message``/``on_text`` for the rest.

    Callbacks run on the event loop that called :meth:`open`. ``on_closed`` fires once when the
    port fails (unplugged, TCP peer gone); :meth:`open` may be called again afterwards.
    """

    def __init__(
        self,
        url: str,
        *,
        baud: int = DEFAULT_BAUD,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        on_text: Callable[[str], None] | None = None,
        on_closed: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.baud = baud
        self.on_message = on_message
        self.on_text = on_text
        self.on_closed = on_closed
        self.last_rx = 0.0  # time.monotonic() of the last complete line
        self.lines_in = 0
        self.garbage = 0  # text lines and over-long lines
        self._ser: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scfleet-serial-w")
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._splitter = LineSplitter()
        self.closed_reason: str | None = "not open"

    @property
    def is_open(self) -> bool:
        return self.closed_reason is None

    # --- lifecycle -------------------------------------------------------------------------
    def _open_blocking(self) -> Any:
        import serial

        try:
            ser = serial.serial_for_url(self.url, do_not_open=True, timeout=READ_TIMEOUT)
            ser.baudrate = self.baud
            # Opening with DTR/RTS asserted resets a board through the auto-reset circuit on
            # some bridges; keep both released so attaching never reboots a running board.
            ser.dtr = False
            ser.rts = False
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise HardwareError(f"{self.url}: cannot open ({_first_line(exc)})") from None
        return ser

    async def open(self) -> None:
        if self.is_open:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        # run_owned: a port opened for a cancelled open() is closed, not left held
        self._ser = await run_owned(self._writer, self._open_blocking, _close_port)
        self._splitter = LineSplitter()
        self._stop = threading.Event()
        self.closed_reason = None
        self.last_rx = time.monotonic()
        self._thread = threading.Thread(
            target=self._read_loop,
            args=(self._ser, self._stop),
            daemon=True,
            name=f"scfleet-serial-r {self.url}",
        )
        self._thread.start()

    async def close(self) -> None:
        self._stop.set()
        thread, ser = self._thread, self._ser
        self._thread = self._ser = None
        if self.closed_reason is None:
            self.closed_reason = "closed"
        self._fail_pending(HardwareError(f"{self.url}: port closed"))
        loop = asyncio.get_running_loop()

        def shut() -> None:
            if thread is not None:
                thread.join(timeout=2)
            if ser is not None:
                _close_port(ser)

        # shielded: a cancelled close still joins the reader and closes the port
        await asyncio.shield(loop.run_in_executor(self._writer, shut))

    def shutdown(self) -> None:
        """Release the writer thread (after :meth:`close`)."""
        self._writer.shutdown(wait=False)

    # --- reading (reader thread) -------------------------------------------------------------
    def _read_loop(self, ser: Any, stop: threading.Event) -> None:
        reason = "port closed"
        try:
            while not stop.is_set():
                data = ser.read(1)  # blocks up to READ_TIMEOUT, returns on the first byte
                if not data:
                    continue
                data += _read_available(ser)
                lines = self._splitter.feed(data)
                if lines:
                    msgs = [decode_line(line) for line in lines]
                    self._post(self._deliver, msgs)
        except Exception as exc:  # noqa: BLE001 - unplugged, peer gone, driver error
            reason = _first_line(exc) or type(exc).__name__
        if not stop.is_set():
            self._post(self._lost, reason)

    def _post(self, fn: Callable[..., None], arg: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(fn, arg)

    # --- on the event loop ------------------------------------------------------------------
    def _deliver(self, msgs: list[dict[str, Any] | str]) -> None:
        self.last_rx = time.monotonic()
        for msg in msgs:
            self.lines_in += 1
            if isinstance(msg, str):
                self.garbage += 1
                if self.on_text is not None:
                    self._safe(self.on_text, msg)
                continue
            mid = msg.get("id")
            fut = self._pending.pop(mid, None) if isinstance(mid, int) else None
            if fut is not None and msg.get("t") in ("ok", "error", "hello", "status"):
                if not fut.done():
                    fut.set_result(msg)
                continue
            if fut is not None:  # an unrelated line happened to carry our id: keep waiting
                self._pending[mid] = fut  # type: ignore[index]
            if self.on_message is not None:
                self._safe(self.on_message, msg)

    def _safe(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception:  # noqa: BLE001 - a consumer bug must not kill the reader
            import logging

            logging.getLogger(__name__).exception("serial line handler failed")

    def _lost(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self._stop.set()
        self._fail_pending(HardwareError(f"{self.url}: {reason}"))
        if self.on_closed is not None:
            self._safe(self.on_closed, reason)

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    # --- writing ------------------------------------------------------------------------------
    async def send_raw(self, data: bytes) -> None:
        ser = self._ser
        if ser is None or not self.is_open:
            raise HardwareError(f"{self.url}: port not open ({self.closed_reason})")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, ser.write, data)
        except Exception as exc:  # noqa: BLE001
            self._lost(_first_line(exc) or "write failed")
            raise HardwareError(f"{self.url}: write failed") from None

    async def request(self, t: str, timeout: float = 2.0, **fields: Any) -> dict[str, Any]:
        """Send one command and wait for its reply; error replies raise BoardReplyError.

        The command line is never logged: ``config`` carries the Wi-Fi key.
        """
        self._next_id += 1
        mid = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        line = json.dumps({"t": t, "id": mid, "v": 1, **fields}, separators=(",", ":"))
        try:
            await self.send_raw(line.encode() + b"\n")
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns the reply and drops a
            # cancel that came in the loop turn the reply did (tests/hw_bridge/test_link_cancel.py)
            async with asyncio.timeout(timeout):
                reply = await fut
        except TimeoutError:
            raise HardwareError(f"{self.url}: no answer to {t} within {timeout:g}s") from None
        finally:
            self._pending.pop(mid, None)
        if reply.get("t") == "error":
            code, msg = str(reply.get("code")), str(reply.get("msg"))
            raise BoardReplyError(_masked(code, fields), _masked(msg, fields))
        return reply


def _masked(text: str, fields: Mapping[str, Any]) -> str:
    """A board's reply text without the Wi-Fi key the command carried: a board that quotes
    the line it refused (foreign firmware, a bug) must not put the key in our error."""
    key = fields.get("wifi_key")
    if isinstance(key, str) and key:
        for form in (key, json.dumps(key)[1:-1]):  # as given, and as the line carried it
            text = text.replace(form, "***")
    return text


def _close_port(ser: Any) -> None:
    """Close a pyserial port, quietly: a dead port may fail to close."""
    with contextlib.suppress(Exception):
        ser.close()


def _read_available(ser: Any) -> bytes:
    """Whatever is buffered now, without waiting.

    ``in_waiting`` of pyserial's ``socket://`` says 0 or 1, not a byte count, so a read of
    "what is waiting" would crawl byte by byte; a zero-timeout read gets it all. The private
    ``_timeout`` is set directly because the public setter reconfigures the port (on RFC 2217
    that is a round of telnet commands to the remote end).
    """
    if not hasattr(ser, "_timeout"):
        return bytes(ser.read(ser.in_waiting))
    old = ser._timeout
    ser._timeout = 0
    try:
        return bytes(ser.read(1 << 16))
    finally:
        ser._timeout = old


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
