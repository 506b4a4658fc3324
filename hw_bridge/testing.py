"""Fakes shipped beside the real parts (as labgrid ships fake drivers): a board that speaks the
line protocol (``firmware/PROTOCOL.md``) in memory, and the link to it.

:class:`FakeBoard` answers ``hello``, ``config``, ``ping``, ``status``, ``start`` and ``stop``
like the firmware does, keeps what it was told, and during a run sends a ``result`` line every
``1/rate`` seconds (no HTTP: ``status``/``latency_us`` come from the test) and a ``done`` line
with its ``dropped`` count at the end. The test can also make it reboot, fall silent, send any
line (``inject`` puts lines among its results), write raw bytes, or be unplugged.
:func:`fake_links` gives :class:`~hw_bridge.fleet.BoardFleet` links to such boards instead of
serial ports, so a mixed run's board side is tested without sockets, threads or the emulator::

    board = FakeBoard(dropped=3)
    fleet = BoardFleet(parse_boards(cfg), cfg, link_factory=fake_links({"socket://b1": board}))

:func:`serve_board` puts the same board on ``socket://127.0.0.1:PORT`` for the real
:class:`~hw_bridge.link.SerialLink` (or a ``scfleet run`` in another process), and
:class:`FakeOwner` stands in for the fleet when a test drives one
:class:`~hw_bridge.fleet.BoardDriver` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from hw_bridge.boardconfig import BoardSettings
from hw_bridge.boards_section import BoardsConfig
from hw_bridge.fleet import BoardDriver, BoardSample
from hw_bridge.link import DEFAULT_BAUD, BoardLink, BoardReplyError, LinkFactory, decode_line
from scfleet_core.errors import HardwareError


def _now_us() -> int:
    return time.monotonic_ns() // 1000


class _Console(Protocol):
    """Where a board's output goes: a :class:`FakeLink`, or a socket (:func:`serve_board`)."""

    def deliver(self, msg: dict[str, Any]) -> None: ...

    def write(self, data: bytes) -> None: ...

    def lose(self, reason: str) -> None: ...


class FakeBoard:
    """A scripted board: the firmware's replies and run loop, without MicroPython or HTTP."""

    def __init__(
        self,
        name: str = "fake",
        *,
        clock_offset_us: int = 0,
        status: int = 200,
        latency_us: int = 1000,
        dropped: int = 0,
        refuse: Mapping[str, str] | None = None,
        inject: Mapping[int, Sequence[dict[str, Any]]] | None = None,
    ) -> None:
        self.name = name
        self.clock_offset_us = clock_offset_us  # board clock = host monotonic µs + this
        self.status = status  # of every result it reports
        self.latency_us = latency_us
        self.dropped = dropped  # chunks its done line says were never delivered
        self.refuse = dict(refuse or {})  # command -> error code it answers with
        #: result number (from 0) -> lines sent just before it (e.g. out-of-range results)
        self.inject = {n: list(lines) for n, lines in (inject or {}).items()}
        self.config: dict[str, Any] = {}
        self.commands: list[str] = []  # every command received, in order
        self.silent = False  # True: answers nothing (a hung board)
        self.run = 0
        self.running = False
        self.seq = 0
        self.starts: list[dict[str, Any]] = []  # the fields of every accepted start
        self._link: _Console | None = None
        self._task: asyncio.Task[None] | None = None

    # --- what the test does to it ---------------------------------------------------------
    def send(self, msg: dict[str, Any]) -> None:
        """Put one line on the console (lost when no host is attached, like a UART's)."""
        if self._link is not None:
            self._link.deliver({**msg, "v": 1})

    def write(self, data: bytes) -> None:
        """Raw bytes on the console (boot ROM text, noise, half a line): a socket host reads
        them as they are; a :class:`FakeLink` host gets the complete lines among them."""
        if self._link is not None:
            self._link.write(data)

    @property
    def attached(self) -> bool:
        """A host has the board's console open."""
        return self._link is not None

    def reboot(self) -> None:
        """Reset: the run is gone, uploads and runs are numbered from 0 again (as the
        firmware's), and the boot banner says hello (``id: null``)."""
        self._stop_run()
        self.seq = self.run = 0
        self.send({"t": "hello", "id": None, **self._hello()})

    def unplug(self, reason: str = "device disconnected") -> None:
        self._stop_run()
        if self._link is not None:
            self._link.lose(reason)

    # --- the firmware's side ----------------------------------------------------------------
    def _hello(self) -> dict[str, Any]:
        return {
            "fw": "fake",
            "proto": 1,
            "chip": "ESP32",
            "mac": "02:00:00:00:00:01",
            "device_id": self.config.get("device_id", ""),
            "wifi_key_set": bool(self.config.get("wifi_key")),
        }

    def _public_config(self) -> dict[str, Any]:
        cfg = {k: v for k, v in self.config.items() if k != "wifi_key"}
        return {**cfg, "wifi_key_set": bool(self.config.get("wifi_key"))}

    def handle(self, t: str, mid: Any, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """The reply to one command (``None``: a silent board)."""
        self.commands.append(t)
        if self.silent:
            return None
        if t in self.refuse:
            return {"t": "error", "id": mid, "code": self.refuse[t], "msg": f"{t} refused"}
        if t == "hello":
            return {"t": "hello", "id": mid, **self._hello()}
        if t == "status":
            return {"t": "status", "id": mid, "running": self.running, "run": self.run}
        if t == "ping":
            board_us = _now_us() + self.clock_offset_us
            return {
                "t": "ok",
                "id": mid,
                "cmd": "ping",
                "token": fields.get("token"),
                "board_us": board_us,
            }
        if t == "config":
            if self.running:
                return {"t": "error", "id": mid, "code": "busy", "msg": "a run is going"}
            self.config.update((k, v) for k, v in fields.items() if k not in ("persist", "reset"))
            return {"t": "ok", "id": mid, "cmd": "config", "config": self._public_config()}
        if t == "stop":
            was = self.running
            self._stop_run()
            return {"t": "ok", "id": mid, "cmd": "stop", "was_running": was}
        if t == "start":
            if self.running:
                return {"t": "error", "id": mid, "code": "busy", "msg": "a run is going"}
            rate = float(fields.get("rate", 1.0))
            seq = fields.get("seq", 0)
            if isinstance(seq, int) and seq > self.seq:  # past what it sent before a reboot
                self.seq = seq
            self.run += 1
            self.running = True
            self.starts.append(dict(fields))
            self._task = asyncio.get_running_loop().create_task(self._loop(self.run, fields))
            return {
                "t": "ok",
                "id": mid,
                "cmd": "start",
                "run": self.run,
                "interval_us": int(1e6 / rate),
            }
        return {"t": "error", "id": mid, "code": "unknown_command", "msg": t}

    async def _loop(self, run: int, fields: Mapping[str, Any]) -> None:
        """A result every interval from ``start_at_us`` until ``duration_s``, then ``done``."""
        interval = 1.0 / float(fields.get("rate", 1.0))
        start_at = int(fields.get("start_at_us", _now_us() + self.clock_offset_us))
        duration = float(fields.get("duration_s", 0.0))
        loop = asyncio.get_running_loop()
        begin = loop.time() + max(0, start_at - self.clock_offset_us - _now_us()) / 1e6
        n = 0
        while n * interval < duration:
            await asyncio.sleep(max(0.0, begin + n * interval - loop.time()))
            for line in self.inject.get(n, ()):
                self.send(line)
            self.send(
                {
                    "t": "result",
                    "seq": self.seq,
                    "attempt": 1,
                    "lag_us": 0,
                    "status": self.status,
                    "latency_us": self.latency_us,
                    "bytes": int(self.config.get("chunk_bytes", 32000)),
                    "error": None if 200 <= self.status < 300 else f"HTTP {self.status}",
                }
            )
            self.seq += 1
            n += 1
        self.running = False
        self.send({"t": "done", "run": run, "sent": n, "dropped": self.dropped})

    def _stop_run(self) -> None:
        self.running = False
        task, self._task = self._task, None
        if task is None:
            return
        try:
            here = asyncio.get_running_loop() is task.get_loop()
        except RuntimeError:
            here = False
        if here:
            task.cancel()
        else:  # the test's thread, a served board's loop (serve_board)
            task.get_loop().call_soon_threadsafe(task.cancel)


class FakeLink:
    """:class:`~hw_bridge.link.BoardLink` to a :class:`FakeBoard`, on the caller's loop."""

    def __init__(
        self,
        board: FakeBoard,
        url: str,
        *,
        baud: int = DEFAULT_BAUD,
        on_message: Callable[[dict[str, Any]], None] | None = None,
        on_text: Callable[[str], None] | None = None,
        on_closed: Callable[[str], None] | None = None,
    ) -> None:
        self.board = board
        self.url = url
        self.baud = baud
        self.on_message = on_message
        self.on_text = on_text
        self.on_closed = on_closed
        self.last_rx = 0.0
        self.closed_reason: str | None = "not open"
        self._next_id = 0
        self._partial = b""

    @property
    def is_open(self) -> bool:
        return self.closed_reason is None

    async def open(self) -> None:
        if self.is_open:
            return
        self.closed_reason = None
        self.last_rx = time.monotonic()
        self.board._link = self

    async def close(self) -> None:
        if self.closed_reason is None:
            self.closed_reason = "closed"
        if self.board._link is self:
            self.board._link = None

    def shutdown(self) -> None:
        pass

    def deliver(self, msg: dict[str, Any]) -> None:
        """An unsolicited line from the board, handed over on the loop as SerialLink does."""
        if not self.is_open:
            return

        def give() -> None:
            self.last_rx = time.monotonic()
            if self.on_message is not None:
                self.on_message(msg)

        asyncio.get_running_loop().call_soon(give)

    def write(self, data: bytes) -> None:
        """Raw bytes: each complete line among them arrives as SerialLink would hand it on."""
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            msg = decode_line(line)
            if isinstance(msg, dict):
                self.deliver(msg)
            elif self.on_text is not None and msg:
                self.on_text(msg)

    def lose(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        if self.board._link is self:
            self.board._link = None
        if self.on_closed is not None:
            self.on_closed(reason)

    async def request(self, t: str, timeout: float = 2.0, **fields: Any) -> dict[str, Any]:
        if not self.is_open:
            raise HardwareError(f"{self.url}: port not open ({self.closed_reason})")
        self._next_id += 1
        reply = self.board.handle(t, self._next_id, fields)
        if reply is None:
            await asyncio.sleep(timeout)
            raise HardwareError(f"{self.url}: no answer to {t} within {timeout:g}s")
        self.last_rx = time.monotonic()
        reply = {**reply, "v": 1}
        if reply.get("t") == "error":
            raise BoardReplyError(str(reply.get("code")), str(reply.get("msg")))
        return reply


def wait_until(condition: Callable[[], object], timeout: float, what: Callable[[], object]) -> None:
    """Poll ``condition`` (every 50 ms) until it holds; after ``timeout`` seconds fail with
    ``what()`` (e.g. the board's event history). Tests wait on progress this way, never on a
    fixed sleep, so a busy host makes them slower, not red."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout:g} s: {what()}")
        time.sleep(0.05)


def fake_links(boards: Mapping[str, FakeBoard]) -> LinkFactory:
    """A ``link_factory`` for :class:`~hw_bridge.fleet.BoardFleet`: port URL -> fake board."""

    def make(url: str, **callbacks: Any) -> BoardLink:
        if url not in boards:
            raise HardwareError(f"{url}: cannot open (no such fake board)")
        return FakeLink(boards[url], url, **callbacks)

    return make


class _SocketConsole:
    """A board's console on one TCP connection (the server's loop; callable from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        self._loop = loop
        self._writer = writer

    def deliver(self, msg: dict[str, Any]) -> None:
        self.write(json.dumps(msg).encode() + b"\n")

    def write(self, data: bytes) -> None:
        self._loop.call_soon_threadsafe(self._writer.write, data)

    def lose(self, reason: str) -> None:
        self._loop.call_soon_threadsafe(self._writer.close)


@contextlib.contextmanager
def serve_board(board: FakeBoard) -> Iterator[str]:
    """``board`` on ``socket://127.0.0.1:PORT`` (the URL given) until the block ends: a thread
    runs its loop, one host at a time, one JSON line per command as the firmware reads them."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port = 0

    async def host(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        console = _SocketConsole(loop, w)
        board._link = console
        try:
            while line := await r.readline():
                req = json.loads(line)
                fields = {k: v for k, v in req.items() if k not in ("t", "id", "v")}
                reply = board.handle(str(req.get("t")), req.get("id"), fields)
                if reply is not None:
                    console.deliver({**reply, "v": 1})
        except (ConnectionError, ValueError):
            pass
        finally:
            if board._link is console:
                board._link = None
            w.close()

    async def main() -> None:
        nonlocal port
        server = await asyncio.start_server(host, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await stop.wait()

    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        board._stop_run()
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


class FakeOwner:
    """A :class:`~hw_bridge.fleet.BoardOwner` that keeps what a driver hands it (results,
    losses, drops, rejoins), for tests that drive one :class:`~hw_bridge.fleet.BoardDriver`."""

    def __init__(self, cfg: BoardsConfig | None = None, *, rate: float = 1.0) -> None:
        self.cfg = cfg or BoardsConfig(ports=("fake",), silence=1.0, status_timeout=1.0)
        self.link_factory = fake_links({})
        self.rate = rate
        self.grace_s = 0.0
        self.schedule_end = self.finished_after = self.watch_until = math.inf
        self.stopping = False
        self.recorded: list[BoardSample] = []
        self.lost: list[str] = []
        self.dropped: list[int] = []
        self.rejoined = 0

    def board_config(self, d: BoardDriver) -> dict[str, Any]:
        return BoardSettings(d.device_id, "http://127.0.0.1:9").fields()

    def record(self, r: BoardSample) -> None:
        self.recorded.append(r)

    def board_lost(self, d: BoardDriver, reason: str) -> None:
        self.lost.append(reason)

    def board_dropped(self, d: BoardDriver, count: int) -> None:
        self.dropped.append(count)

    def board_rejoined(self, d: BoardDriver) -> None:
        self.rejoined += 1


__all__ = ["FakeBoard", "FakeLink", "FakeOwner", "fake_links", "serve_board", "wait_until"]
