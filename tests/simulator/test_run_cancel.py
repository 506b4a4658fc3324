"""A cancel of the whole run (the third Ctrl-C: ``session`` cancels the task running
``Environment.run``) is never swallowed. ``Environment.run`` caught it while the scenarios and
companions were still winding down from the second press, cancelled them again and returned a
result as if nothing had happened: the third press did not give up on the clean-up (README,
"a third gives up on the clean-up too") and whoever cancelled the run saw it finish normally."""

from __future__ import annotations

import asyncio
import time

from simulator.config import parse_config
from simulator.http import make_transport
from simulator.run.device_row import Rows
from simulator.run.runner import Environment, build_bank


class _SlowToStop:
    """A companion (as the board fleet is) that takes long to wind down once cancelled."""

    def __init__(self) -> None:
        self.winding_down = False
        self.closed = False

    async def prepare(self, env: Environment) -> None:
        pass

    async def run(self, env: Environment, start: float) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.winding_down = True
            await asyncio.sleep(60)  # e.g. boards answering their stop, one by one
            raise

    async def close(self) -> None:
        self.closed = True

    def device_rows(self) -> Rows:
        return ()

    def open_files(self) -> int:
        return 0


async def _ok_server() -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


async def _until(cond: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.01)


def test_cancelling_the_run_as_it_winds_down_cancels_it() -> None:
    """Before: the run task returned its result (not cancelled) after the third press."""
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 20,
                    "duration": "60s",
                    "pre_allocated_devices": 5,
                    "graceful_stop": "0s",
                    "device": {"chunk_bytes": 100},
                }
            }
        }
    )

    async def main() -> None:
        srv, url = await _ok_server()
        transport = make_transport(url, timeout=10.0)
        env = Environment(cfg, transport, bank=build_bank(cfg))
        slow = _SlowToStop()
        env.companions.append(slow)
        task = asyncio.ensure_future(env.run())
        try:
            await _until(lambda: env.started_perf and env.elapsed > 0.3, 20.0)
            assert not task.done() and env.elapsed > 0.3, "the run did not start"
            env.request_stop()  # first press
            env.cancel_inflight()  # second press: the companion now winds down (60 s)
            await _until(lambda: slow.winding_down, 10.0)
            assert slow.winding_down
            task.cancel()  # third press: give up on the clean-up too
            await asyncio.wait({task}, timeout=20.0)
            assert task.done(), "the run did not end after its cancel"
            assert task.cancelled(), "the run returned a result after its cancel"
            assert slow.closed  # the companions are still closed on the way out
            assert all(t.done() for t in env._tasks)  # no scenario or companion left behind
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await transport.close()
            srv.close()
            await srv.wait_closed()

    asyncio.run(main())
