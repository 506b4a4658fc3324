"""Serial endpoints for emulated boards: ``socket://`` (raw TCP) and ``rfc2217://``.

All boards of one :class:`EmulatorServer` share one asyncio loop on a background thread, so a
test or benchmark can run many boards in one process while esptool runs in others. RFC 2217 uses
pyserial's own server-side :class:`serial.rfc2217.PortManager` (the code ``esp_rfc2217_server``
builds on), so baud rate and DTR/RTS from the client reach the board exactly as they would reach
a USB-UART bridge. Listening is on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from hw_bridge.emulator.board import AppRunner, EmulatedBoard
from hw_bridge.emulator.rom import Faults

Protocol = Literal["socket", "rfc2217"]
T = TypeVar("T")

_IAC = b"\xff"


class _SocketConn:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write_data(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def close(self) -> None:
        self._writer.close()


class _RfcConn(_SocketConn):
    """Board data is IAC-escaped; telnet replies from the PortManager go out raw."""

    def write(self, data: bytes) -> None:  # PortManager's "connection" interface
        if not self._writer.is_closing():
            self._writer.write(bytes(data))

    def write_data(self, data: bytes) -> None:
        super().write_data(data.replace(_IAC, _IAC + _IAC))


class _LineShim:
    """The "serial port" PortManager configures: forwards DTR/RTS/baud to the board."""

    def __init__(self, board: EmulatedBoard) -> None:
        self._board = board
        self._dtr = False
        self._rts = False
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        self.cts = self.dsr = self.ri = self.cd = False

    @property
    def baudrate(self) -> int:
        return self._board.host_baud

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._board.host_baud = int(value)

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._dtr = bool(value)
        self._board.set_lines(dtr=self._dtr)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._rts = bool(value)
        self._board.set_lines(rts=self._rts)

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass


def _rfc_filter(manager: Any, data: bytes) -> bytes:
    """PortManager.filter, with a fast path for runs of plain data.

    ``filter`` walks byte by byte in Python, too slow for megabytes of flash data; outside of
    telnet commands (mode normal, no sub-option open) every byte up to the next IAC is plain
    data, so only the bytes from an IAC on go through the state machine.
    """
    from serial.rfc2217 import M_NORMAL

    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        if manager.mode == M_NORMAL and manager.suboption is None:
            j = data.find(_IAC, i)
            if j < 0:
                out += data[i:]
                break
            out += data[i:j]
            i = j
        for byte in manager.filter(data[i : i + 1]):
            out += byte
        i += 1
    return bytes(out)


@dataclass
class BoardHandle:
    """A running emulated board and the URL esptool or the bridge opens."""

    board: EmulatedBoard
    url: str
    protocol: Protocol
    port: int
    _server: EmulatorServer

    def reset(self, *, download: bool) -> None:
        """Press EN (holding BOOT when ``download``); thread-safe."""
        self._server.call(lambda: self.board.reset(download=download))

    def call(self, fn: Callable[[EmulatedBoard], T]) -> T:
        """Run ``fn(board)`` on the emulator thread (board state is not thread-safe)."""
        return self._server.call(lambda: fn(self.board))


class EmulatorServer:
    """Owns the event loop thread and the listening sockets of any number of boards."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self.handles: list[BoardHandle] = []

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        if self._thread is not None:
            return self
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="esp-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            for srv in self._servers:
                srv.close()
            tasks = list(self._conn_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for h in self.handles:
                h.board.power_off()
            await asyncio.sleep(0)

        try:
            self._submit(shutdown()).result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop = None
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- thread plumbing --------------------------------------------------------------------------
    def _submit(self, coro: Any) -> Future[Any]:
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self._submit(run()).result(timeout=10)  # type: ignore[no-any-return]

    # --- boards -----------------------------------------------------------------------------------
    def add_board(self, board: EmulatedBoard, protocol: Protocol = "socket") -> BoardHandle:
        """Power the board on and listen for one host at a time on an ephemeral port."""
        if protocol not in ("socket", "rfc2217"):
            raise ValueError(f"unknown protocol {protocol!r}")
        self.start()

        async def setup() -> int:
            handler = self._serve_socket if protocol == "socket" else self._serve_rfc2217

            async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                task = asyncio.current_task()
                assert task is not None
                self._conn_tasks.add(task)
                try:
                    await handler(board, r, w)
                except asyncio.CancelledError:
                    w.close()  # server shutting down
                finally:
                    self._conn_tasks.discard(task)

            srv = await asyncio.start_server(on_client, "127.0.0.1", 0)
            self._servers.append(srv)
            board.power_on()
            return int(srv.sockets[0].getsockname()[1])

        port = self._submit(setup()).result(timeout=10)
        handle = BoardHandle(board, f"{protocol}://127.0.0.1:{port}", protocol, port, self)
        self.handles.append(handle)
        return handle

    async def _serve_socket(
        self, board: EmulatedBoard, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = _SocketConn(writer)
        if not board.attach(conn, has_lines=False):
            writer.close()  # a serial port has one user at a time
            return
        try:
            while data := await reader.read(65536):
                await board.rx(data)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            board.detach(conn)
            writer.close()

    async def _serve_rfc2217(
        self, board: EmulatedBoard, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        from serial.rfc2217 import PortManager

        conn = _RfcConn(writer)
        if not board.attach(conn, has_lines=True):
            writer.close()
            return
        manager = PortManager(_LineShim(board), conn)
        try:
            while data := await reader.read(65536):
                payload = _rfc_filter(manager, data)
                if payload:
                    await board.rx(payload)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            board.detach(conn)
            writer.close()


class EmulatedBoards(list[BoardHandle]):
    """The handles from :func:`start_emulated_boards`; also stops their server."""

    def __init__(self, server: EmulatorServer, handles: list[BoardHandle]) -> None:
        super().__init__(handles)
        self.server = server

    @property
    def urls(self) -> list[str]:
        return [h.url for h in self]

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> EmulatedBoards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[BoardHandle]:
        return super().__iter__()


def start_emulated_boards(
    n: int,
    *,
    protocol: Protocol = "socket",
    app_runner: AppRunner | None = None,
    faults: dict[int, Faults] | None = None,
    pace: bool = False,
    boot_mode: Literal["download", "app"] | None = None,
    name_prefix: str = "emu",
    server: EmulatorServer | None = None,
) -> EmulatedBoards:
    """Start ``n`` boards on 127.0.0.1 and return their handles (``.url``, ``.board``).

    ``boot_mode`` defaults to ``"download"`` for ``socket://`` (no reset lines to get there)
    and ``"app"`` for RFC 2217, where esptool's DTR/RTS reset enters download mode itself.
    ``faults`` maps a board index to its :class:`Faults`.
    """
    mode = boot_mode or ("download" if protocol == "socket" else "app")
    boards = (
        EmulatedBoard(
            f"{name_prefix}-{i}",
            boot_mode=mode,
            app_runner=app_runner,
            faults=(faults or {}).get(i),
            pace=pace,
        )
        for i in range(n)
    )
    return start_boards(boards, protocol, server)


def start_boards(
    boards: Iterable[EmulatedBoard], protocol: Protocol, server: EmulatorServer | None
) -> EmulatedBoards:
    """Serve each of ``boards`` on ``server``, or on a server of their own, started here.

    The boards are made as they are taken, so one that fails to be made fails here too; then a
    server started here is stopped, so its thread and the boards served so far do not stay.
    """
    srv = (server or EmulatorServer()).start()
    handles = []
    try:
        for board in boards:
            handles.append(srv.add_board(board, protocol))
    except BaseException:
        if server is None:  # ours
            srv.stop()
        raise
    return EmulatedBoards(srv, handles)
