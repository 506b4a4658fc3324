"""A board reset mid-run is counted (``lost`` "rebooted", then rejoined) and sends no upload
sequence twice: it numbers from 0 again after a boot, and its restart tells it to go on past
every sequence it may have sent (the server would answer a repeated one as a retry: stored
once, counted twice).

Checked by probe17 (the brief's "uploads silently doubled after a reset"): held, with the
emulated boards and the real firmware too (an EN reset, two resets 50 ms apart, a power cycle:
ledger rows = distinct sequences = the board's requests). ``FakeBoard`` now reboots as the
firmware does, so this is checked without the emulator.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hw_bridge.fleet import BoardDriver, BoardState, now_us
from hw_bridge.testing import FakeBoard, FakeOwner, fake_links

RATE = 20.0


def test_a_board_reset_mid_run_is_counted_and_sends_no_sequence_twice() -> None:
    async def main() -> None:
        board = FakeBoard()
        sent: list[int] = []  # every upload the board made, its result line heard or not
        mute = False
        deliver = board.send

        def send(msg: dict[str, Any]) -> None:
            if msg.get("t") == "result":
                sent.append(int(msg["seq"]))
                if mute:  # uploaded, its line lost in the reset
                    return
            deliver(msg)

        board.send = send  # type: ignore[method-assign]
        fleet = FakeOwner(rate=RATE)
        fleet.link_factory = fake_links({"socket://b": board})
        d = BoardDriver(fleet, "b", "socket://b", "esp32-b")
        await d.setup()
        loop = asyncio.get_running_loop()
        fleet.schedule_end = loop.time() + 4.0
        fleet.finished_after = fleet.schedule_end - 1 / RATE - 0.5
        fleet.watch_until = fleet.schedule_end + 2.0
        await d.start(now_us(), 4.0)
        watch = loop.create_task(d.watch())
        await asyncio.sleep(1.3)
        mute = True
        await asyncio.sleep(0.2)
        mute = False
        before = max(sent)
        board.reboot()
        await watch
        assert fleet.lost == ["rebooted"] and fleet.rejoined == 1
        assert d.state == BoardState.FINISHED
        assert len(sent) == len(set(sent)), sorted(s for s in set(sent) if sent.count(s) > 1)
        assert board.starts[-1]["seq"] > before
        assert d.requests < len(sent)  # the muted ones were never heard

    asyncio.run(main())
