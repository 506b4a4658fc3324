"""Slowloris against the real server under a 256-descriptor limit: normal requests are still
served, and silent, half-sent and slow-body connections are closed by the server in bounded
time (header and body deadlines, connection cap below the descriptor limit)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from reference_server import UPLOAD_PATH

pytestmark = pytest.mark.slow

FD_LIMIT = 256
SILENT = 150  # connect and send nothing
HALF_HEAD = 130  # a request head that never ends
SLOW_BODY = 20  # a complete head, then a body that stalls
NORMAL = 25
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0


def _limited_server_cmd(data_dir: Path) -> list[str]:
    """``python -m reference_server`` with RLIMIT_NOFILE lowered to 256 (soft and hard)."""
    argv = [
        "reference_server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--analysis-workers",
        "1",
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
    ]
    code = (
        "import resource, runpy, sys;"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT}));"
        f"sys.argv = {argv!r};"
        "runpy.run_module('reference_server', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code]


async def _closed_by_server(reader: asyncio.StreamReader, deadline: float) -> bytes | None:
    """What the server sent before closing, or None if it still holds the connection."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await reader.read()
    except (ConnectionError, OSError):
        return b""
    except TimeoutError:
        return None


async def _attack_and_serve(url: str) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conns: list[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open_one(kind: str) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            return  # refused outright also means it is not held
        if kind == "half":
            writer.write(b"POST " + UPLOAD_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        elif kind == "body":
            writer.write(
                b"POST " + UPLOAD_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/octet-stream\r\nX-Device-ID: slow\r\n"
                b"X-Sample-Rate: 16000\r\nContent-Length: 32000\r\n\r\n" + b"\0" * 100
            )
        await writer.drain()
        conns.append((kind, reader, writer))

    kinds = ["silent"] * SILENT + ["half"] * HALF_HEAD + ["body"] * SLOW_BODY
    await asyncio.gather(*(open_one(k) for k in kinds))
    attack_opened = time.monotonic()

    served: list[float] = []
    statuses: list[int] = []
    timeout = aiohttp.ClientTimeout(total=20)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(url, timeout=timeout, connector=connector) as http:
        for i in range(NORMAL):
            start = time.monotonic()
            headers = {
                "Content-Type": "application/octet-stream",
                "X-Device-ID": f"normal-{i}",
                "X-Sample-Rate": "16000",
                "X-Sequence": "0",
            }
            try:
                async with http.post(UPLOAD_PATH, data=b"\1\0" * 1600, headers=headers) as resp:
                    statuses.append(resp.status)
            except (aiohttp.ClientError, TimeoutError):
                statuses.append(0)
            served.append(time.monotonic() - start)

        deadline = attack_opened + max(HEADER_TIMEOUT, BODY_TIMEOUT) + 10
        endings = await asyncio.gather(*(_closed_by_server(r, deadline) for _, r, _ in conns))
        try:
            async with http.get("/api/stats") as resp:
                stats = json.loads(await resp.text())
        except (aiohttp.ClientError, TimeoutError):
            stats = {}
    for _, _, writer in conns:
        writer.close()
    held = [kind for (kind, _, _), end in zip(conns, endings, strict=True) if end is None]
    body_answers = [end for (kind, _, _), end in zip(conns, endings, strict=True) if kind == "body"]
    return {
        "opened": len(conns),
        "statuses": statuses,
        "served_s": served,
        "held": held,
        "body_answers": body_answers,
        "stats": stats,
    }


def test_slowloris_does_not_starve_normal_requests(tmp_path: Path, spawn_server: Any) -> None:
    with spawn_server(tmp_path / "data", cmd=_limited_server_cmd(tmp_path / "data")) as srv:
        result = asyncio.run(_attack_and_serve(srv.url))
        assert srv.proc.poll() is None, "the server died under the attack"
    assert result["opened"] >= 250  # the attack really held that many sockets open
    assert result["statuses"] == [200] * NORMAL, result["statuses"]
    assert max(result["served_s"]) < 10, result["served_s"]
    assert not result["held"], f"{len(result['held'])} slow connections still held open"
    stats = result["stats"]
    print(json.dumps(stats))  # figures for the README (pytest -s)
    assert stats["connections_max"] < FD_LIMIT
    assert stats["header_timeouts"] + stats["connections_evicted"] > 0, stats
    # a stalled body is answered 408 (or its connection was closed), never accepted
    assert all(not end or b" 408 " in end.split(b"\r\n", 1)[0] for end in result["body_answers"])
    assert stats["uploads_accepted"] == NORMAL


def test_embedded_server_takes_the_deadlines_from_the_server_table(
    tmp_path: Path, reference_server: Any
) -> None:
    """``[server] header_timeout`` reaches the embedded server: a silent connection is closed."""
    from simulator.config import parse_config

    cfg = parse_config(
        {
            "scenarios": {"s": {"executor": "constant-vus", "duration": "1s"}},
            "server": {"header_timeout": "1s", "body_timeout": "2s", "max_connections": 50},
        }
    )
    assert (cfg.server.header_timeout, cfg.server.body_timeout) == (1.0, 2.0)
    srv = reference_server(
        tmp_path / "data",
        analysis_workers=1,
        header_timeout=cfg.server.header_timeout,
        max_connections=cfg.server.max_connections,
    )

    async def silent() -> tuple[bytes | None, float]:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        start = time.monotonic()
        end = await _closed_by_server(reader, start + 10)
        writer.close()
        return end, time.monotonic() - start

    end, waited = asyncio.run(silent())
    assert end == b"" and 0.5 < waited < 5, (end, waited)
    with urllib.request.urlopen(srv.url + "/api/stats", timeout=5) as resp:
        assert json.loads(resp.read())["connections_max"] == 50
