"""A cancel is never lost while the bridge waits with a timeout. Python 3.11's
``asyncio.wait_for`` returns the awaited result and drops the cancel when that result came in
the loop turn the cancel did: ``SerialLink.request`` cancelled as the board's reply arrived
returned the reply, and ``monitor --duration`` cancelled as the port closed returned normally.
A fake board on a real ``socket://`` port; the cancel comes k loop turns after the reply / the
close is handed to the event loop (k = 0..3), sweeping the turn it completes in."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from hw_bridge.commands import _monitor
from hw_bridge.link import SerialLink
from hw_bridge.testing import FakeBoard, serve_board, wait_until


def _cancel_after(
    loop: asyncio.AbstractEventLoop, k: int, task: asyncio.Task[Any], delivered: list[bool]
) -> None:
    """Cancel ``task`` k loop turns from now (k = 0: at once); record whether it still ran."""
    if k:
        loop.call_soon(_cancel_after, loop, k - 1, task, delivered)
    else:
        delivered.append(task.cancel())


async def _until(cond: Callable[[], object], seconds: float = 5.0) -> None:
    """Poll ``cond()`` every 10 ms until it holds or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_request_cancelled_as_its_reply_arrives_is_cancelled() -> None:
    """Before (``asyncio.wait_for``): at k = 0 the task returned the board's reply."""
    board = FakeBoard("b")
    delivered_at: list[int] = []

    async def one(link: SerialLink, k: int) -> None:
        loop = asyncio.get_running_loop()
        real_deliver = link._deliver
        delivered: list[bool] = []
        task = asyncio.ensure_future(link.request("hello", 10.0))

        def hooked(msgs: list[Any]) -> None:
            real_deliver(msgs)  # sets the request's reply...
            if any(isinstance(m, dict) and m.get("t") == "hello" for m in msgs):
                _cancel_after(loop, k, task, delivered)  # ...and then the cancel comes

        link._deliver = hooked  # type: ignore[method-assign]
        try:
            await asyncio.wait({task}, timeout=10.0)
            await _until(lambda: delivered)  # (k turns after the reply)
        finally:
            link._deliver = real_deliver  # type: ignore[method-assign]
        assert task.done() and len(delivered) == 1, f"k={k}: {delivered}"
        if delivered[0]:
            delivered_at.append(k)
            assert task.cancelled(), f"k={k}: the request returned after its cancel"
        else:
            assert task.result()["t"] == "hello"  # it had finished: nothing to cancel
        assert link._pending == {}  # nothing left waiting for a reply

    async def main(url: str) -> None:
        link = SerialLink(url)
        await link.open()
        try:
            await asyncio.to_thread(wait_until, lambda: board.attached, 10, lambda: "no host")
            assert (await link.request("hello", 5.0))["proto"] == 1  # the link works
            for k in range(4):
                await one(link, k)
            assert (await link.request("hello", 5.0))["proto"] == 1  # and it still works
        finally:
            await link.close()
            link.shutdown()

    with serve_board(board) as url:
        asyncio.run(main(url))
    assert 0 in delivered_at


@pytest.mark.slow  # four boards served and unplugged: ~1.5 s
def test_monitor_cancelled_as_the_port_closes_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before (``asyncio.wait_for`` on ``--duration``): at k = 0 ``_monitor`` returned
    normally."""
    delivered_at: list[int] = []
    real_lost = SerialLink._lost

    async def one(board: FakeBoard, url: str, k: int) -> None:
        loop = asyncio.get_running_loop()
        delivered: list[bool] = []
        args = argparse.Namespace(baud=115200, raw=False, hello=False, duration=30.0)
        task = asyncio.ensure_future(_monitor(url, args))

        def lost(self: SerialLink, reason: str) -> None:
            real_lost(self, reason)  # on_closed: "port closed", the monitor's event set...
            _cancel_after(loop, k, task, delivered)  # ...and then the cancel comes

        monkeypatch.setattr(SerialLink, "_lost", lost)
        await asyncio.to_thread(wait_until, lambda: board.attached, 10, lambda: "no host")
        board.unplug()
        await asyncio.wait({task}, timeout=10.0)
        await _until(lambda: delivered)
        assert task.done() and len(delivered) == 1, f"k={k}: {delivered}"
        if delivered[0]:
            delivered_at.append(k)
            assert task.cancelled(), f"k={k}: the monitor returned after its cancel"

    for k in range(4):
        board = FakeBoard("m")
        with serve_board(board) as url:
            asyncio.run(one(board, url, k))
        assert "port closed" in capsys.readouterr().out
    assert 0 in delivered_at
