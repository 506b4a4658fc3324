"""An arrival that finds every device busy is dropped only after the loop has read the replies
already received. uvloop runs a turn's due timers before it polls its sockets, so after a
stall (a GC pause, a busy core, the hypervisor) the schedule's wake-up saw every device whose
reply was waiting in a socket as busy and dropped arrivals those devices were free for. At
16,000/s (two workers) a loop in long turns held each turn's arrivals as "busy" through the
next turn's starts: twice the devices a turn needs, and a second of drops once turns passed
125 ms, where 250 ms of arrivals (max_devices = rate / 4) were provisioned. On the run's own
loop (uvloop), a real socket pair."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from simulator.config import ConstantArrivalRate
from simulator.executors import DevicePool, run_arrival_rate
from simulator.executors.runtime import new_loop
from simulator.metrics.registry import IntervalStats, Registry
from simulator.run.runner import ScenarioEvents


class _Replier:
    """Each iteration sends on a socket pair whose peer has already answered (the reply waits
    in the socket) and ends when the loop reads that reply; the first start also holds the
    loop past the next arrival's time, as a stalled process does."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.starts = 0
        self.socks: list[socket.socket] = []

    def start(self, dev: Any, scheduled: float, finished: Any) -> None:
        loop = asyncio.get_running_loop()
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        self.socks += [ours, peer]
        peer.send(b"reply")  # already received when the loop next polls

        def read() -> None:
            loop.remove_reader(ours.fileno())
            ours.recv(16)
            finished()

        loop.add_reader(ours.fileno(), read)
        self.starts += 1
        if self.starts == 1:
            time.sleep(self.stall)  # the next arrival falls due meanwhile

    async def abandon(self) -> None:
        pass


def test_a_busy_device_whose_reply_is_in_is_not_a_drop() -> None:
    """Two arrivals 2 ms apart, one device. The first's reply is in the socket before the
    second is due (the loop held 20 ms), so the second starts on the freed device, late.
    Before: the wake-up ran before the poll that reads the reply and dropped it (1 dropped,
    1 started)."""
    loop = new_loop()
    events = ScenarioEvents(Registry(), "s", IntervalStats())
    starter = _Replier(stall=0.02)
    ex = ConstantArrivalRate(500, 1.0, 0.004, 1, 1)  # arrivals at 0 and 2 ms

    async def main() -> None:
        await run_arrival_rate(
            ex,
            start=loop.time() + 0.05,
            pool=DevicePool(lambda i: i, 1, 1),
            starter=starter,
            events=events,
            stop=asyncio.Event(),
            graceful_stop=5.0,
        )

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        for s in starter.socks:
            s.close()
    assert (starter.starts, events.interval.dropped) == (2, 0)


def test_a_device_still_busy_after_the_poll_is_a_drop() -> None:
    """The same, but the first reply never comes: the second arrival is dropped (after one
    read of the sockets), not queued."""
    loop = new_loop()
    events = ScenarioEvents(Registry(), "s", IntervalStats())
    started: list[float] = []

    class Silent:
        def start(self, dev: Any, scheduled: float, finished: Any) -> None:
            started.append(scheduled)
            time.sleep(0.02)

        async def abandon(self) -> None:
            pass

    ex = ConstantArrivalRate(500, 1.0, 0.004, 1, 1)

    async def main() -> None:
        await run_arrival_rate(
            ex,
            start=loop.time() + 0.05,
            pool=DevicePool(lambda i: i, 1, 1),
            starter=Silent(),
            events=events,
            stop=asyncio.Event(),
            graceful_stop=0.0,
        )

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert (len(started), events.interval.dropped) == (1, 1)
