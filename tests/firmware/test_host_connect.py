"""The emulated boards' connect (HostHal, CPython 3.11's asyncio) leaves no socket connecting
when it is cancelled or times out in the firmware's client: the guard beside the board's own
connect (tests/firmware/mpy_esp32hal.py, `esp32_connect_*`), which MicroPython's asyncio left
open. The connect hangs for real: a listener on loopback whose accept queue is full drops SYNs.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware.scfw import http
from firmware.scfw.hal_host import HostHal

PROC_TCP = Path("/proc/net/tcp")


def _connecting_to(port: int) -> int:
    """Sockets on this machine in SYN_SENT towards 127.0.0.1:`port`."""
    n = 0
    for line in PROC_TCP.read_text().splitlines()[1:]:
        f = line.split()
        if f[2] == f"0100007F:{port:04X}" and f[3] == "02":
            n += 1
    return n


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects hang: listen(0), its queue filled, nothing accepted."""
    if not PROC_TCP.exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = int(lst.getsockname()[1])
    fill = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fill.append(s)
    try:
        yield port
    finally:
        for s in fill:
            s.close()
        lst.close()


async def _until(cond: Callable[[], bool], seconds: float = 2.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return False


def test_host_connect_cancelled_or_timed_out_closes_its_socket(full_listener: int) -> None:
    port = full_listener

    async def main() -> None:
        await asyncio.sleep(0.05)  # the fillers' handshakes settle
        base = _connecting_to(port)
        hal = HostHal(write_line=lambda line: None)
        task = asyncio.ensure_future(hal.open_connection("127.0.0.1", port))
        assert await _until(lambda: _connecting_to(port) == base + 1), "not connecting"
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled()
        assert await _until(lambda: _connecting_to(port) == base), "the cancelled connect stayed"

        client = http.Client(f"http://127.0.0.1:{port}/up", hal.open_connection, True, 0.2)
        with pytest.raises(OSError, match="timeout"):
            await client.request("POST", [], [b"x"], 1)
        assert await _until(lambda: _connecting_to(port) == base), "the timed-out connect stayed"

    asyncio.run(main())
