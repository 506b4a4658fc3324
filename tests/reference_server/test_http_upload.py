"""``POST /api/esp32/audio/upload`` in process: accepted bodies reach the ledger, every
malformed request gets its own 400/413 with a reason."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from reference_server import UPLOAD_PATH
from reference_server.app import STATE
from reference_server.ledger import read_uploads

GOOD = {
    "Content-Type": "application/octet-stream",
    "X-Device-ID": "esp32-000123",
    "X-Sample-Rate": "16000",
}


def _state(client: TestClient) -> Any:
    return client.server.app[STATE]


async def test_accepted_uploads_are_in_the_ledger(client: TestClient) -> None:
    bodies = [bytes(range(256)) * 125, b"\x01\x00" * 8000, b"\xff\xfe"]
    for seq, body in enumerate(bodies):
        resp = await client.post(UPLOAD_PATH, data=body, headers={**GOOD, "X-Sequence": str(seq)})
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
        assert answer == {
            "status": "ok",
            "duplicate": False,
            "device_id": "esp32-000123",
            "sequence": seq,
            "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
    resp = await client.post(UPLOAD_PATH, data=b"\x00\x00", headers=GOOD)  # no X-Sequence
    assert (await resp.json())["sequence"] is None
    state = _state(client)  # answered 200 means committed: no flush needed
    rows = read_uploads(state.config.ledger_path)
    assert [(r.sequence, r.bytes, r.sha256) for r in rows] == [
        *[(i, len(b), hashlib.sha256(b).hexdigest()) for i, b in enumerate(bodies)],
        (None, 2, hashlib.sha256(b"\x00\x00").hexdigest()),
    ]
    assert {(r.device_id, r.sample_rate, r.remote) for r in rows} == {
        ("esp32-000123", 16000, "127.0.0.1")
    }
    stats = await (await client.get("/api/stats")).json()
    assert stats["uploads_accepted"] == 4 and stats["upload_bytes"] == sum(map(len, bodies)) + 2


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in GOOD.items() if k != name}


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "reason"),
    [
        (_without("X-Device-ID"), b"\0\0", 400, "device_id", "missing X-Device-ID"),
        ({**GOOD, "X-Device-ID": ""}, b"\0\0", 400, "device_id", "missing X-Device-ID"),
        ({**GOOD, "X-Device-ID": "a b"}, b"\0\0", 400, "device_id", "invalid X-Device-ID"),
        ({**GOOD, "X-Device-ID": "x" * 65}, b"\0\0", 400, "device_id", "invalid X-Device-ID"),
        (_without("X-Sample-Rate"), b"\0\0", 400, "sample_rate", "missing X-Sample-Rate"),
        ({**GOOD, "X-Sample-Rate": "44100"}, b"\0\0", 400, "sample_rate", "unsupported"),
        ({**GOOD, "X-Sample-Rate": "fast"}, b"\0\0", 400, "sample_rate", "not an integer"),
        ({**GOOD, "X-Sequence": "one"}, b"\0\0", 400, "sequence", "X-Sequence"),
        ({**GOOD, "X-Sequence": "-1"}, b"\0\0", 400, "sequence", "X-Sequence"),
        ({**GOOD, "X-Sequence": "1_0"}, b"\0\0", 400, "sequence", "X-Sequence"),
        ({**GOOD, "X-Sequence": "+5"}, b"\0\0", 400, "sequence", "X-Sequence"),
        ({**GOOD, "X-Sequence": "9" * 20}, b"\0\0", 400, "sequence", "X-Sequence"),
        ({**GOOD, "X-Sequence": "9223372036854775808"}, b"\0\0", 400, "sequence", "range"),
        ({**GOOD, "X-Sample-Rate": "16_000"}, b"\0\0", 400, "sample_rate", "not an integer"),
        ({**GOOD, "X-Sample-Rate": "+16000"}, b"\0\0", 400, "sample_rate", "not an integer"),
        (GOOD, b"\0\0\0", 400, "odd_length", "odd byte count 3"),
        (GOOD, b"", 400, "empty", "empty body"),
        ({**GOOD, "Content-Type": "text/plain"}, b"\0\0", 400, "content_type", "octet-stream"),
        (
            {**GOOD, "Content-Type": "application/x-www-form-urlencoded"},
            b"a=bb",
            400,
            "content_type",
            "octet-stream",
        ),
        (GOOD, b"\0" * (64 * 1024 + 2), 413, "too_large", "larger than 65536"),
    ],
)
async def test_rejections(
    client: TestClient,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
    reason: str,
) -> None:
    resp = await client.post(UPLOAD_PATH, data=body, headers=headers)
    assert resp.status == status
    assert reason in (await resp.json())["error"]
    stats = await (await client.get("/api/stats")).json()
    assert stats["uploads_rejected"] == 1 and stats["upload_rejections"] == {code: 1}
    assert stats["uploads_accepted"] == 0


async def test_missing_content_type_rejected(client: TestClient) -> None:
    # aiohttp adds application/octet-stream to bytes bodies unless told not to.
    resp = await client.post(
        UPLOAD_PATH,
        data=b"\0\0",
        headers=_without("Content-Type"),
        skip_auto_headers=["Content-Type"],
    )
    assert resp.status == 400 and "octet-stream" in (await resp.json())["error"]


async def test_chunked_body_over_limit_is_413(client: TestClient) -> None:
    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(40):
            yield b"\0" * 4096

    resp = await client.post(UPLOAD_PATH, data=chunks(), headers=GOOD)
    assert resp.status == 413


async def test_other_sample_rates_when_allowed(make_client: Any) -> None:
    client = await make_client(sample_rates=(16000, 44100))
    resp = await client.post(UPLOAD_PATH, data=b"\0\0", headers={**GOOD, "X-Sample-Rate": "44100"})
    assert resp.status == 200


async def test_health(client: TestClient) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["profile_source"] in ("builtin", "audio_synth")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Sample-Rate", "١٦٠٠٠"),  # Arabic-Indic digits: int() takes them
        ("X-Sequence", "٣"),
        ("X-Sequence", "³"),
    ],
)
async def test_non_ascii_digits_rejected(client: TestClient, name: str, value: str) -> None:
    """Sent as raw UTF-8 bytes (a client library would refuse to encode them)."""
    import asyncio

    headers = {**GOOD, name: value}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (
        f"POST {UPLOAD_PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 2\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + b"\0\0"
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert _state(client).stats.uploads_accepted == 0


async def test_duplicate_device_sequence_answered_and_not_stored(client: TestClient) -> None:
    """The contract the firmware relies on when it retries a chunk with the same X-Sequence."""
    headers = {**GOOD, "X-Sequence": "41"}
    first = await client.post(UPLOAD_PATH, data=b"\1\0", headers=headers)
    assert first.status == 200
    assert (await first.json())["duplicate"] is False
    for _ in range(2):  # the same chunk again: a retry whose first answer was lost
        again = await client.post(UPLOAD_PATH, data=b"\1\0", headers=headers)
        assert again.status == 200
        assert await again.json() == {
            "status": "duplicate",
            "duplicate": True,
            "device_id": "esp32-000123",
            "sequence": 41,
        }
    other_body = await client.post(UPLOAD_PATH, data=b"\2\0\3\0", headers=headers)
    assert other_body.status == 409  # other audio under that key (test_sequence_conflict.py)
    other = await client.post(UPLOAD_PATH, data=b"\1\0", headers={**GOOD, "X-Sequence": "42"})
    assert (await other.json())["duplicate"] is False
    for _ in range(2):  # without X-Sequence nothing is de-duplicated
        resp = await client.post(UPLOAD_PATH, data=b"\1\0", headers=GOOD)
        assert (await resp.json())["duplicate"] is False
    rows = read_uploads(_state(client).config.ledger_path)
    assert [r.sequence for r in rows] == [41, 42, None, None]
    stats = await (await client.get("/api/stats")).json()
    assert (stats["uploads_accepted"], stats["uploads_duplicate"]) == (4, 2)
    assert stats["uploads_conflict"] == 1
    assert stats["upload_bytes"] == 8 and stats["ledger_written"] == 4
