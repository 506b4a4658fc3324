"""A board that reboots after it was set up and before the common start (its boot banner
comes while it waits, READY) has its clock synced again before it is started.

Found by probe17: the banner was heeded only while the board ran, so its start carried the
clock offset measured before the reboot. The board's clock restarts at 0 on a boot: a board
that had been up an hour was told to begin an hour from now by its new clock, uploaded
nothing for the whole run, and answered ``status`` "running" — never reported lost.
"""

from __future__ import annotations

import asyncio
import time

from hw_bridge.fleet import BoardDriver, BoardState, now_us
from hw_bridge.testing import FakeBoard, FakeOwner, fake_links

HOUR_US = 3_600_000_000


def test_a_reboot_while_ready_resyncs_the_clock_before_the_start() -> None:
    async def main() -> None:
        board = FakeBoard(clock_offset_us=HOUR_US)  # up an hour
        fleet = FakeOwner(rate=20.0)
        fleet.link_factory = fake_links({"socket://b": board})
        d = BoardDriver(fleet, "b", "socket://b", "esp32-b")
        await d.setup()
        assert d.state == BoardState.READY
        assert abs(d.offset_us - HOUR_US) < 1_000_000
        board.clock_offset_us = -time.monotonic_ns() // 1000  # it boots: its clock from 0
        board.reboot()
        await asyncio.sleep(0.05)  # the banner is read while it waits for the start
        await d.start(now_us() + 100_000, 1.0)
        deadline = time.monotonic() + 3.0
        while d.requests == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert d.requests > 0, f"no upload; its start: {board.starts[-1]}"
        assert abs(d.offset_us - board.clock_offset_us) < 1_000_000
        board._stop_run()

    asyncio.run(main())
