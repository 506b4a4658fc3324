"""The CPython HAL models a board's heap (hal_host.HEAP_BYTES), so an emulated ESP32 refuses a
config that a real one could not hold, and an emulated S3 accepts it (firmware/PROTOCOL.md)."""

from __future__ import annotations

import json

from firmware.scfw import app, hal_host


class Script:
    def __init__(self, *cmds: dict[str, object]) -> None:
        self.cmds = [json.dumps(c).encode() for c in cmds] + [b'{"t":"exit","id":99}']

    async def readline(self) -> bytes:
        return self.cmds.pop(0) if self.cmds else b""


async def replies(chip: str, *cmds: dict[str, object]) -> dict[object, dict[str, object]]:
    lines: list[bytes] = []
    hal = hal_host.HostHal(
        write_line=lines.append, chip=chip, files={}, heap_bytes=hal_host.HEAP_BYTES[chip]
    )
    await app.run(hal, Script(*cmds))
    return {m["id"]: m for m in map(json.loads, lines) if m.get("id") is not None}


TARGET = {"target": "http://127.0.0.1:9/u", "persist": False}


async def test_an_emulated_esp32_refuses_what_its_heap_cannot_hold() -> None:
    big = {"t": "config", "id": 1, "bank_bytes": 100_000, **TARGET}
    r = await replies("ESP32", big, {"t": "config", "id": 2, "concurrency": 2, **TARGET})
    assert r[1]["t"] == "error" and r[1]["code"] == "bad_config", r[1]
    assert "does not fit" in str(r[1]["msg"]) and "bank_bytes 100000" in str(r[1]["msg"])
    assert r[2]["t"] == "ok"  # the default bank with two connections fits
    r = await replies("ESP32-S3", big)
    assert r[1]["t"] == "ok", r[1]


async def test_start_counts_the_bank_it_replaces_as_free() -> None:
    """The boot-time bank (16,000) is released before a 40,000-byte one is made: start fits."""
    cfg = {"t": "config", "id": 1, "bank_bytes": 40_000, **TARGET}
    start = {"t": "start", "id": 2, "rate": 1, "duration_s": 0.2}
    r = await replies("ESP32", cfg, start)
    assert r[1]["t"] == "ok" and r[2]["t"] == "ok", r
