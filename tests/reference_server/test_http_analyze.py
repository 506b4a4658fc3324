"""``POST /api/lightweight-analyze`` in process (analysis in threads): the multipart contract."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from reference_server import ANALYZE_PATH


def _form(field: str, payload: bytes, filename: str = "test.wav") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("device", "esp32-000001")  # extra fields are allowed, as in Flask
    form.add_field(field, payload, filename=filename, content_type="audio/wav")
    return form


async def test_sine_wav_is_analysed(client: TestClient, wav: Callable[..., bytes]) -> None:
    resp = await client.post(ANALYZE_PATH, data=_form("audio", wav(1500.0, seconds=1.0)))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["spectral_centroid_hz"] == pytest.approx(1500.0, rel=0.03)
    assert body["rms"] == pytest.approx(0.3536, rel=0.01)
    assert body["duration_s"] == pytest.approx(1.0) and body["sample_rate"] == 16000
    assert isinstance(body["is_anomaly"], bool) and body["anomaly_score"] > 0
    assert len(body["band_energies"]) == 32
    assert body["server_ms"] >= body["processing_ms"] > 0
    stats = await (await client.get("/api/stats")).json()
    assert stats["analyses_ok"] == 1 and stats["analyses_in_flight"] == 0


@pytest.mark.parametrize(
    ("field", "payload", "status", "reason"),
    [
        ("file", b"RIFF", 400, "missing file field 'audio'"),
        ("audio", b"this is not audio" * 10, 400, "cannot decode"),
        ("audio", b"", 400, "empty"),
        ("audio", b"\0" * (64 * 1024 + 1), 413, "larger than 65536"),
    ],
)
async def test_rejections(
    client: TestClient, field: str, payload: bytes, status: int, reason: str
) -> None:
    resp = await client.post(ANALYZE_PATH, data=_form(field, payload))
    assert resp.status == status
    assert reason in (await resp.json())["error"]
    stats = await (await client.get("/api/stats")).json()
    assert stats["analyses_rejected"] == 1 and stats["analyses_ok"] == 0


async def test_audio_without_filename_is_not_a_file(client: TestClient) -> None:
    """Werkzeug files a part without a filename under ``request.form``: Flask would 400 too."""
    form = aiohttp.FormData()
    form.add_field("audio", "plain text value")
    form.add_field("x", b"1", filename="x.bin")  # force multipart encoding
    resp = await client.post(ANALYZE_PATH, data=form)
    assert resp.status == 400 and "not a file" in (await resp.json())["error"]


async def test_not_multipart(client: TestClient, wav: Callable[..., bytes]) -> None:
    resp = await client.post(ANALYZE_PATH, data=wav(440.0), headers={"Content-Type": "audio/wav"})
    assert resp.status == 400 and "multipart" in (await resp.json())["error"]
    bad = await client.post(
        ANALYZE_PATH,
        data=b"--x\r\nno headers end",
        headers={"Content-Type": "multipart/form-data; boundary=zzz"},
    )
    assert bad.status == 400
