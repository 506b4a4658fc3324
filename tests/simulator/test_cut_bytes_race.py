"""A looping VU's upload cut before its answer counts the bytes it had written in
``data_sent`` (k6 counts every byte it wrote), even when the answer is read in the same loop
turn as the cut, before the waiter's cancel callback runs: the answer is recorded nowhere, the
bytes once. Before, the answer's callback took the request off the in-flight table and the cut
then found nothing to count: 0 bytes."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable

from simulator.config import parse_config
from simulator.http import Request, Response
from simulator.metrics import IntervalStats, Registry
from simulator.run.devices import IotUpload, RunContext, make_behaviour

TOML = """
[scenarios.up]
executor = "constant-vus"
vus = 1
duration = "1s"
[scenarios.up.device]
chunk_bytes = 100
"""


class _Held:
    """A transport that keeps each request and its callback; the test answers."""

    def __init__(self) -> None:
        self.held: list[tuple[Request, Callable[[Response], None]]] = []

    def submit(self, req: Request, done: Callable[[Response], None]) -> None:
        self.held.append((req, done))


class _Bank:
    def chunk(self, index: int, seq: int, size: int) -> bytes:
        return bytes(size)


def _upload() -> tuple[IotUpload, _Held, IntervalStats]:
    cfg = parse_config(tomllib.loads(TOML))
    transport, interval = _Held(), IntervalStats()
    ctx = RunContext(Registry(), transport, _Bank(), loop_to_perf=0.0)  # type: ignore[arg-type]
    beh = make_behaviour(cfg.scenarios[0], ctx, interval)
    assert isinstance(beh, IotUpload)
    return beh, transport, interval


async def test_an_answer_read_before_the_cut_callback_still_counts_the_bytes() -> None:
    beh, transport, interval = _upload()
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    beh.start(beh.make_device(0), 0.0, lambda: None, count=False, waiter=waiter)
    ((req, done),) = transport.held
    req.written = 321  # the transport wrote head and body
    waiter.cancel()  # the iteration is cut (ramp-down, graceful stop) ...
    done(Response(200, b"ok", received=40))  # ... and its answer is read in the same turn
    await asyncio.sleep(0)  # the waiter's callbacks run
    for rec in beh.ctx.registry.recorders:
        rec.flush()
    assert (interval.sent, interval.requests) == (321, 0)


async def test_an_answer_before_the_cut_counts_as_a_request_not_as_a_cut() -> None:
    beh, transport, interval = _upload()
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    finished: list[int] = []
    beh.start(beh.make_device(0), 0.0, lambda: finished.append(1), count=False, waiter=waiter)
    ((req, done),) = transport.held
    req.written = 321
    done(Response(200, b"ok", sent=321, received=40))
    waiter.set_result(None)  # the iteration ends on its answer
    await asyncio.sleep(0)
    for rec in beh.ctx.registry.recorders:
        rec.flush()  # the recorders buffer rows
    assert (interval.sent, interval.requests, finished) == (321, 1, [1])
