"""The line protocol end to end: SerialLink (host) <-> emulated board running the real firmware.

Both serial endpoints (socket:// and RFC 2217), a real HTTP sink on 127.0.0.1, and a config that
is persisted into the emulated flash and survives a reset.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hw_bridge.appmode import start_app_boards
from hw_bridge.link import BoardReplyError, SerialLink

KEY = "pr0t0-K3y-d0-not-leak"


@asynccontextmanager
async def http_sink() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A keep-alive HTTP/1.1 server that records each request's headers and body size."""
    got: list[dict[str, Any]] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await r.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                hdrs = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                body = await r.readexactly(int(hdrs.get("content-length", "0")))
                got.append({"line": lines[0], "headers": hdrs, "bytes": len(body)})
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                w.write(b'Content-Length: 11\r\n\r\n{"ok":true}')
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/esp32/audio/upload", got
    finally:
        srv.close()


async def wait_for(pred: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["socket", "rfc2217"])
def test_round_trip_against_the_emulated_board(protocol: str) -> None:
    boards = start_app_boards(1, protocol=protocol)  # type: ignore[arg-type]
    handle = boards[0]
    assert handle.url.startswith(f"{protocol}://127.0.0.1:")
    seen: list[dict[str, Any]] = []
    texts: list[str] = []

    async def main() -> None:
        async with http_sink() as (target, got):
            link = SerialLink(handle.url, on_message=seen.append, on_text=texts.append)
            await link.open()
            try:
                hello = await link.request("hello", 3)
                seen.append(hello)
                assert hello["proto"] == 1 and hello["chip"] == "ESP32"
                assert hello["mac"] == handle.board.mac_str
                assert hello["micropython"] == "host-cpython"

                cfg = await link.request(
                    "config",
                    3,
                    device_id="esp32-rt-001",
                    target=target,
                    wifi_ssid="lab",
                    wifi_key=KEY,
                    persist=True,
                )
                seen.append(cfg)
                assert cfg["config"]["wifi_key_set"] is True
                assert cfg["config"]["device_id"] == "esp32-rt-001"

                h0 = time.monotonic_ns() // 1000
                pong = await link.request("ping", 3, token={"n": 7})
                h1 = time.monotonic_ns() // 1000
                seen.append(pong)
                assert pong["token"] == {"n": 7}
                offset = pong["board_us"] - (h0 + h1) // 2
                assert abs(offset) < 50_000  # same host clock: the estimate is ~0

                status = await link.request("status", 3)
                seen.append(status)
                assert status["running"] is False and status["wifi_key_set"] is True

                # below batch_above_rps: one `result` line per request
                ok = await link.request("start", 3, rate=5, duration_s=0.5, delay_s=0.05)
                assert ok["cmd"] == "start" and ok["batch"] is False
                await wait_for(lambda: any(m["t"] == "done" for m in seen), 8)
                singles = [m for m in seen if m["t"] == "result"]
                assert len(singles) == 3 and all(m["status"] == 200 for m in singles)
                assert all(m["latency_us"] > 0 and m["bytes"] == 32000 for m in singles)

                # above it: batched `results`, then stop mid-run
                ok = await link.request("start", 3, rate=40)
                assert ok["batch"] is True
                await wait_for(lambda: any(m["t"] == "results" for m in seen), 5)
                stop = await link.request("stop", 10)
                assert stop["was_running"] is True and stop["sent"] >= 1
                await wait_for(lambda: sum(m["t"] == "done" for m in seen) == 2, 5)
                batched = [i for m in seen if m["t"] == "results" for i in m["items"]]
                assert batched and all(i["status"] == 200 for i in batched)

                with pytest.raises(BoardReplyError, match="bad_start"):
                    await link.request("start", 3, rate=0)

                # garbage from the host costs an error line, never the board
                await link.send_raw(b'\x00\xff\xfe garbage\r\n{"t":"nope","id":"x"}\n{half')
                await link.send_raw(b" line}\n")
                assert (await link.request("hello", 3))["t"] == "hello"
                errors = [m for m in seen if m["t"] == "error"]
                assert {e["code"] for e in errors} >= {"bad_json", "unknown_command"}

                # the persisted config is in the board's flash: it survives a reset
                seen.clear()
                handle.reset(download=False)
                await wait_for(lambda: any(m["t"] == "hello" for m in seen), 5)
                boot = next(m for m in seen if m["t"] == "hello")
                assert boot["id"] is None and boot["device_id"] == "esp32-rt-001"
                assert boot["wifi_key_set"] is True
            finally:
                await link.close()
                link.shutdown()
            uploads = [g for g in got if g["line"].startswith("POST /api/esp32/audio/upload ")]
            # a request in flight when `stop` came reaches the server without a result line
            assert 0 <= len(uploads) - (len(singles) + len(batched)) <= 1
            for u in uploads:
                h = u["headers"]
                assert h["x-device-id"] == "esp32-rt-001" and h["x-sample-rate"] == "16000"
                assert h["content-type"] == "application/octet-stream"
                assert u["bytes"] == 32000
            seqs = [int(u["headers"]["x-sequence"]) for u in uploads]
            assert seqs[:3] == [0, 1, 2] and len(set(seqs)) == len(seqs)

    try:
        asyncio.run(main())
    finally:
        boards.stop()
    everything = json.dumps(seen) + "".join(texts)
    assert KEY not in everything
    assert not any(KEY in e for e in handle.board.events)
