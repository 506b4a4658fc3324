"""Issue 13 item 3 against the real reference server: an answer lost after the upload was stored.

The firmware app (CPython HAL) uploads through a TCP proxy that forwards the first request to the
reference server and then cuts the connection instead of passing its answer back. The firmware
retries with the same X-Sequence, the server answers `"duplicate": true` and stores nothing new,
and the firmware counts the chunk once: its `ok` equals the ledger's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from firmware.scfw import app, hal_host
from reference_server import UPLOAD_PATH
from reference_server.app import create_app
from reference_server.config import ServerConfig
from reference_server.ledger import read_uploads


class LosingProxy:
    """Forwards TCP to `port`; on the first connection the server's answer never comes back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0

    async def handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        lose = self.connections == 1
        sr, sw = await asyncio.open_connection("127.0.0.1", self.port)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, drop: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    if drop:  # the upload is stored; its answer is lost with the connection
                        break
                    w.write(data)
                    await w.drain()
            for x in (cw, sw):
                x.close()

        await asyncio.gather(pump(cr, sw, False), pump(sr, cw, lose))


async def test_a_lost_answer_is_retried_with_its_sequence_and_counted_once(
    tmp_path: Path,
) -> None:
    config = ServerConfig(data_dir=tmp_path, max_upload_bytes=64 * 1024, session_ttl_s=60.0)
    server = TestServer(
        create_app(config, analysis_executor=lambda c: ThreadPoolExecutor(c.analysis_workers))
    )
    await server.start_server()
    proxy = LosingProxy(server.port)
    listener = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    lines: list[bytes] = []
    hal = hal_host.HostHal(write_line=lines.append, files={})

    def seen(t: str) -> list[dict[str, Any]]:
        return [m for m in map(json.loads, lines) if m["t"] == t]

    class Host:
        def __init__(self) -> None:
            self.cmds = [
                json.dumps(
                    {
                        "t": "config",
                        "id": 1,
                        "target": f"http://127.0.0.1:{port}{UPLOAD_PATH}",
                        "device_id": "esp32-dedup1",
                        "chunk_bytes": 640,
                        "bank_bytes": 4000,
                        "backoff_ms": 5,
                        "timeout_s": 5,
                        "persist": False,
                    }
                ).encode(),  # fmt: skip
                b'{"t":"start","id":2,"rate":5,"duration_s":0.6}',
                b"wait",
                b'{"t":"status","id":3}',
                b'{"t":"exit","id":4}',
            ]

        async def readline(self) -> bytes:
            c = self.cmds.pop(0) if self.cmds else b""
            if c == b"wait":
                for _ in range(300):  # bounded: 30 s
                    if seen("done"):
                        break
                    await asyncio.sleep(0.1)
                return await self.readline()
            return c

    try:
        await asyncio.wait_for(app.run(hal, Host()), 60)
    finally:
        listener.close()
        await server.close()
    [status] = [m for m in seen("status") if m.get("id") == 3]
    rows = read_uploads(config.ledger_path)
    seqs = [r.sequence for r in rows]
    assert proxy.connections >= 2
    assert sorted(seqs) == [0, 1, 2], seqs  # one row per chunk: the retry stored nothing
    assert status["produced"] == 3 and status["ok"] == 3 and status["failed"] == 1, status
    assert status["duplicates"] == 1 and status["dropped"] == 0, status
    assert status["ok"] == len(rows)  # the firmware's counters agree with the ledger
    results = [m for m in seen("result")]
    first = [r for r in results if r["seq"] == 0]
    assert [r["attempt"] for r in first] == [1, 2] and [r["dup"] for r in first] == [False, True]


async def test_a_sequence_held_with_other_audio_is_a_conflict_the_board_moves_past(
    tmp_path: Path,
) -> None:
    """The server holds the board's sequence 0 with other audio (the board numbered from 0
    again with a new sound). Before, it answered 200 duplicate and the board counted the chunk
    delivered while the ledger never got it; now it is 409, the board sends it once, counts it
    in `conflicts` and `dropped`, and its `ok` is again what the ledger got from it."""
    config = ServerConfig(data_dir=tmp_path, max_upload_bytes=64 * 1024, session_ttl_s=60.0)
    server = TestServer(
        create_app(config, analysis_executor=lambda c: ThreadPoolExecutor(c.analysis_workers))
    )
    await server.start_server()
    device = "esp32-conflict1"
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Device-ID": device,
        "X-Sample-Rate": "16000",
        "X-Sequence": "0",
    }
    target = f"http://127.0.0.1:{server.port}{UPLOAD_PATH}"
    async with aiohttp.ClientSession() as http:  # an earlier life of the board, other audio
        resp = await http.post(target, data=b"\7\0" * 320, headers=headers)
        assert resp.status == 200
        resp.release()
    lines: list[bytes] = []
    hal = hal_host.HostHal(write_line=lines.append, files={})

    def seen(t: str) -> list[dict[str, Any]]:
        return [m for m in map(json.loads, lines) if m["t"] == t]

    cmds = [
        json.dumps(
            {"t": "config", "id": 1, "target": target, "device_id": device, "chunk_bytes": 640}
            | {"bank_bytes": 4000, "backoff_ms": 5, "timeout_s": 5, "persist": False}
        ).encode(),
        b'{"t":"start","id":2,"rate":5,"duration_s":0.6}',
        b"wait",
        b'{"t":"status","id":3}',
        b'{"t":"exit","id":4}',
    ]

    class Host:
        async def readline(self) -> bytes:
            c = cmds.pop(0) if cmds else b""
            if c == b"wait":
                for _ in range(300):  # bounded: 30 s
                    if seen("done"):
                        break
                    await asyncio.sleep(0.1)
                return await self.readline()
            return c

    try:
        await asyncio.wait_for(app.run(hal, Host()), 60)
    finally:
        await server.close()
    [status] = [m for m in seen("status") if m.get("id") == 3]
    rows = read_uploads(config.ledger_path)
    assert [(r.sequence, r.bytes) for r in rows] == [(0, 640), (1, 640), (2, 640)]
    assert rows[0].sha256 != rows[1].sha256  # sequence 0 is still the earlier audio
    assert status["produced"] == 3 and status["ok"] == 2 and status["failed"] == 1, status
    assert status.get("conflicts") == 1 and status["dropped"] == 1, status
    assert status["retried"] == 0 and status["duplicates"] == 0, status
    assert status["ok"] == len(rows) - 1  # what the board counted ok, the ledger got
    first = [r for r in seen("result") if r["seq"] == 0]
    assert [(r["attempt"], r["status"]) for r in first] == [(1, 409)], first
