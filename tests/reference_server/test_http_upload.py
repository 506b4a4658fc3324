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
            "device_id": "esp32-000123",
            "sequence": seq,
            "bytes": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
    resp = await client.post(UPLOAD_PATH, data=b"\x00\x00", headers=GOOD)  # no X-Sequence
    assert (await resp.json())["sequence"] is None
    state = _state(client)
    assert state.ledger.flush(5.0)
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
        ({**GOOD, "X-Sequence": "-1"}, b"\0\0", 400, "sequence", "range"),
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
