"""The coordinator↔worker pipe under the run's event loop (uvloop): a message larger than one
read or than the socket buffer arrives whole in both directions. Before ``watch_pipe``, uvloop
left the watched fd non-blocking and ``recv``/``send`` raised ``BlockingIOError``, which ended
every 2-worker run at 2,000/s with "worker ... exited without its final report"."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading

from simulator.executors.runtime import new_loop
from simulator.run.workers import watch_pipe

BIG = bytes(range(256)) * 16384  # 4 MiB: many reads, far above a socketpair's buffer


def test_a_large_message_crosses_a_watched_pipe_both_ways() -> None:
    mine, theirs = multiprocessing.get_context("spawn").Pipe()
    got: list[bytes] = []
    echoed: list[bytes] = []

    def peer() -> None:  # the other process's side, blocking as multiprocessing expects
        theirs.send(BIG)
        echoed.append(theirs.recv())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def readable() -> None:
            got.append(mine.recv())
            loop.remove_reader(mine.fileno())
            mine.send(got[-1])  # the loop side sends a large message too (a worker's Final)
            done.set()

        watch_pipe(loop, mine, readable)
        thread = threading.Thread(target=peer, daemon=True)
        thread.start()
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.to_thread(thread.join, 30)

    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        mine.close()
        theirs.close()
    assert got == [BIG]
    assert echoed == [BIG]
