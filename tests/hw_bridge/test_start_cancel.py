"""A run cancelled (a third Ctrl-C) while a board start runs in a thread leaves nothing behind.

``await run_in_executor(...)`` raises the cancel at once while its thread goes on: the emulated
boards it then started (their event-loop thread, a listening port per board, the firmware app
on each) were never stopped, and a serial port it then opened stayed open and held (a port has
one user at a time). Each test holds the thread at the start until the cancel has been
delivered, then lets it finish, and checks what is left once the loop is closed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import hw_bridge.appmode
from hw_bridge.appmode import start_app_boards
from hw_bridge.boards_section import parse_boards
from hw_bridge.emulator.server import EmulatedBoards
from hw_bridge.fleet import BoardDriver, BoardFleet, BoardState
from hw_bridge.fsimage import FsImageError
from hw_bridge.link import SerialLink
from hw_bridge.threads import run_owned
from simulator.config import parse_config
from simulator.http import FakeTransport
from simulator.run.runner import Environment, build_bank


def _held(start: Callable[..., Any], made: list[Any]) -> tuple[Callable[..., Any], Any, Any]:
    """``start`` that waits (on its thread) for ``go`` once it has told ``entered``."""
    entered, go = threading.Event(), threading.Event()

    def held(*args: Any, **kw: Any) -> Any:
        entered.set()
        assert go.wait(10), "never released"
        made.append(start(*args, **kw))
        return made[-1]

    return held, entered, go


async def _cancel_inside(task: asyncio.Future[Any], entered: Any, go: Any) -> None:
    """Cancel ``task`` while its thread is held in the start, then let the thread finish."""
    assert await asyncio.to_thread(entered.wait, 10), "the start never ran"
    task.cancel()
    await asyncio.sleep(0.05)  # the cancel reaches the task before the thread goes on
    go.set()
    await asyncio.wait({task}, timeout=15)
    assert task.cancelled()


def _threads_left(before: set[threading.Thread], names: tuple[str, ...]) -> list[str]:
    """Threads named ``names*`` started since ``before`` and still alive after 5 s (a writer
    thread told to shut down ends just after its last job)."""
    deadline = time.monotonic() + 5
    while True:
        left = [t.name for t in set(threading.enumerate()) - before if t.name.startswith(names)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _config(ports: list[str]) -> Any:
    return parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-vus",
                    "vus": 1,
                    "duration": "5s",
                    "think_time": "0.5s",
                    "device": {"kind": "iot_upload", "chunk_bytes": 64},
                }
            },
            "boards": {"ports": ports, "rate": 2},
        }
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow  # one emulated board started (in a thread) and stopped: ~1 s
def test_run_cancelled_while_emulated_boards_start_stops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the "esp-emulator" thread stayed alive and the board's port kept listening."""
    made: list[EmulatedBoards] = []
    held, entered, go = _held(start_app_boards, made)
    monkeypatch.setattr(hw_bridge.appmode, "start_app_boards", held)
    cfg = _config(["emulated:1"])
    before = set(threading.enumerate())

    async def main() -> None:
        env = Environment(
            cfg, FakeTransport(keep=False), bank=build_bank(cfg), target="http://127.0.0.1:9"
        )
        env.companions.append(BoardFleet(parse_boards(cfg), cfg))
        await _cancel_inside(asyncio.ensure_future(env.run()), entered, go)

    asyncio.run(main())  # closing the loop waits for the executor's threads
    assert len(made) == 1
    left = _threads_left(before, ("esp-emulator",))
    assert not left, left
    assert not any(_listening(h.port) for h in made[0]), "an emulated board still listens"


@pytest.mark.slow  # one emulated board started, running, and stopped: ~2 s
def test_run_cancelled_again_while_it_closes_still_stops_the_boards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A third Ctrl-C cancels the run, its clean-up closes the boards, and a fourth comes while
    the boards are told to stop. Before: the link's writer thread and the emulated boards
    (their thread and port) were left running."""
    cfg = _config(["emulated:1"])
    made: list[EmulatedBoards] = []
    held, entered, go = _held(start_app_boards, made)
    go.set()  # no hold: only to see the boards
    monkeypatch.setattr(hw_bridge.appmode, "start_app_boards", held)
    real_stop = BoardDriver.stop
    stopping = threading.Event()

    async def stop(self: BoardDriver) -> None:
        stopping.set()
        await real_stop(self)

    monkeypatch.setattr(BoardDriver, "stop", stop)
    before = set(threading.enumerate())

    async def main() -> None:
        env = Environment(
            cfg, FakeTransport(keep=False), bank=build_bank(cfg), target="http://127.0.0.1:9"
        )
        fleet = BoardFleet(parse_boards(cfg), cfg)
        env.companions.append(fleet)
        task = asyncio.ensure_future(env.run())
        for _ in range(1000):  # until the board runs (10 s at most)
            if fleet.drivers and fleet.drivers[0].state == BoardState.RUNNING:
                break
            await asyncio.sleep(0.01)
        assert fleet.drivers[0].state == BoardState.RUNNING
        task.cancel()  # the third Ctrl-C...
        for _ in range(500):
            if stopping.is_set():
                break
            await asyncio.sleep(0.01)
        assert stopping.is_set(), "the boards were never told to stop"
        task.cancel()  # ...and a fourth, while the clean-up waits for the board
        await asyncio.wait({task}, timeout=15)
        assert task.cancelled()

    asyncio.run(main())
    left = _threads_left(before, ("esp-emulator", "scfleet-serial"))
    assert not left, left
    assert not any(_listening(h.port) for h in made[0]), "an emulated board still listens"


@pytest.mark.slow  # one emulated board started and stopped: ~1 s
def test_link_open_cancelled_while_the_port_opens_closes_the_port() -> None:
    """Before: the port opened by the thread stayed open, so the board (one host at a time)
    refused the next link: its ``hello`` failed."""
    boards = start_app_boards(1)
    try:
        url = boards[0].url
        link = SerialLink(url)
        made: list[Any] = []
        held, entered, go = _held(link._open_blocking, made)
        link._open_blocking = held  # type: ignore[method-assign]

        async def main() -> None:
            await _cancel_inside(asyncio.ensure_future(link.open()), entered, go)
            await link.close()
            link.shutdown()

        asyncio.run(main())
        assert len(made) == 1 and not made[0].is_open, "the port opened for the cancelled link"

        async def again() -> dict[str, Any]:
            other = SerialLink(url)
            await other.open()
            try:
                return await other.request("hello", 5.0)
            finally:
                await other.close()
                other.shutdown()

        assert asyncio.run(again())["t"] == "hello"
    finally:
        boards.stop()


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_run_owned_hands_the_result_over_when_not_cancelled() -> None:
    released: list[socket.socket] = []

    async def main() -> socket.socket:
        return await run_owned(None, _listener, released.append)

    s = asyncio.run(main())
    try:
        assert released == [] and _listening(s.getsockname()[1])
    finally:
        s.close()


def test_run_owned_cancelled_in_the_hand_over_turn_releases_the_result() -> None:
    """The thread has returned and its result is on its way to the loop when the cancel comes:
    the caller never gets it, so it is released on the loop's side."""
    made: list[socket.socket] = []
    pool = ThreadPoolExecutor(max_workers=1)

    def start() -> socket.socket:
        made.append(_listener())
        return made[-1]

    async def main() -> None:
        task = asyncio.ensure_future(run_owned(pool, start, socket.socket.close))
        await asyncio.sleep(0)  # the task submits start()
        pool.submit(lambda: None).result(10)  # (blocking the loop) start() has returned...
        task.cancel()  # ...and the cancel lands before its result is handed over
        await asyncio.wait({task}, timeout=10)
        assert task.cancelled()

    try:
        asyncio.run(main())
    finally:
        pool.shutdown()
    assert len(made) == 1 and made[0].fileno() == -1, "the listener was left open"


@pytest.mark.slow  # a LittleFS image built until it overflows: ~1 s
def test_boards_that_fail_to_start_leave_no_emulator_running() -> None:
    """A start that fails part-way (here: files that do not fit the board's LittleFS) raises;
    before, the emulator thread it had started stayed alive."""
    before = set(threading.enumerate())
    with pytest.raises(FsImageError, match="do not fit"):
        start_app_boards(1, files={"/big.bin": b"x" * (3 << 20)})
    left = _threads_left(before, ("esp-emulator",))
    assert not left, left
