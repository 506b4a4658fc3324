"""The same (device, sequence) with a different body is a conflict (409), not a retry.

A device that reset its sequence counter numbers new audio from 0 again. The server used to
answer such an upload 200 ``"duplicate": true`` and store nothing: the device was told its
audio was kept while it was dropped. Now the body's digest (the row's ``sha256``) decides: the
same body again is a retry of an upload whose answer was lost (200 duplicate, as before),
another body is refused with 409 naming the device and sequence, and nothing is stored. The
digest is in the row itself, so it survives a kill -9 and a restart as the row does, and a
ledger written before this change (which holds the same column) decides the same way.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from reference_server import UPLOAD_PATH
from reference_server.ledger import Ledger, Upload, read_uploads

AUDIO_A = b"\x01\x00\x02\x00" * 400
AUDIO_B = b"\x05\x00\x06\x00" * 400  # the same length: only the content differs


def _headers(device: str, seq: int) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "X-Device-ID": device,
        "X-Sample-Rate": "16000",
        "X-Sequence": str(seq),
    }


def _post(url: str, device: str, seq: int, body: bytes) -> tuple[int, dict[str, Any]]:
    """One upload over a real loopback connection: (status, JSON answer)."""
    req = urllib.request.Request(
        url + UPLOAD_PATH, data=body, headers=_headers(device, seq), method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def _conflict(device: str, seq: int) -> dict[str, Any]:
    return {
        "error": f"X-Sequence {seq} of X-Device-ID {device} is already stored with a different "
        "body; this upload was not stored",
        "status": "conflict",
        "device_id": device,
        "sequence": seq,
    }


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/api/stats", timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def test_other_audio_under_a_held_sequence_is_409_and_a_retry_is_a_duplicate(
    tmp_path: Path, spawn_server: Any
) -> None:
    with spawn_server(tmp_path, "--analysis-workers", "1") as srv:
        assert _post(srv.url, "dev-a", 0, AUDIO_A)[0] == 200
        # the device reset its counter: new audio under sequence 0 (before: 200 duplicate)
        assert _post(srv.url, "dev-a", 0, AUDIO_B) == (409, _conflict("dev-a", 0))
        # a retry of the stored upload (its answer lost) is still a duplicate
        status, answer = _post(srv.url, "dev-a", 0, AUDIO_A)
        assert (status, answer["status"], answer["duplicate"]) == (200, "duplicate", True)
        # another device's sequence 0 is its own
        assert _post(srv.url, "dev-b", 0, AUDIO_B)[0] == 200
        stats = _stats(srv.url)
        code, _out, _err = srv.stop(signal.SIGTERM)
    assert code == 0
    assert (stats["uploads_accepted"], stats["uploads_duplicate"]) == (2, 1)
    assert stats["uploads_conflict"] == 1 and stats["ledger_pending"] == 0
    rows = read_uploads(tmp_path / "ledger.sqlite")
    assert [(r.device_id, r.sequence, r.sha256) for r in rows] == [
        ("dev-a", 0, hashlib.sha256(AUDIO_A).hexdigest()),  # the first audio, untouched
        ("dev-b", 0, hashlib.sha256(AUDIO_B).hexdigest()),
    ]


def test_the_digest_survives_kill_9_and_a_restart(tmp_path: Path, spawn_server: Any) -> None:
    """Acknowledged means committed with its digest: after SIGKILL and a restart on the same
    data dir the server still tells a retry (200 duplicate) from other audio (409)."""
    with spawn_server(tmp_path, "--analysis-workers", "1") as first:
        for seq in range(3):
            assert _post(first.url, "dev-k", seq, AUDIO_A + bytes([seq, 0]))[0] == 200
        first.proc.kill()  # no shutdown, no checkpoint: the rows are in the WAL
        first.proc.wait(10)
    with spawn_server(tmp_path, "--analysis-workers", "1") as second:
        for seq in range(3):
            status, answer = _post(second.url, "dev-k", seq, AUDIO_A + bytes([seq, 0]))
            assert (status, answer["duplicate"]) == (200, True), answer
            assert _post(second.url, "dev-k", seq, AUDIO_B) == (409, _conflict("dev-k", seq))
        assert _post(second.url, "dev-k", 3, AUDIO_B)[0] == 200
        code, _out, _err = second.stop(signal.SIGTERM)
    assert code == 0
    assert [r.sequence for r in read_uploads(tmp_path / "ledger.sqlite")] == [0, 1, 2, 3]


def test_a_ledger_written_before_the_change_still_loads_and_decides(tmp_path: Path) -> None:
    """A ledger file made by the earlier server (its schema, its rows, written here with plain
    SQL as it wrote them) opens, and its rows' sha256 decide duplicate against conflict."""
    db = tmp_path / "ledger.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE uploads (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, sequence INTEGER"
        " NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, sample_rate INTEGER NOT NULL,"
        " content_type TEXT NOT NULL, received_at REAL NOT NULL, remote TEXT)"
    )
    conn.execute(
        "CREATE UNIQUE INDEX uploads_device_sequence ON uploads (device_id, sequence)"
        " WHERE sequence IS NOT NULL"
    )
    conn.execute(
        "INSERT INTO uploads (device_id, sequence, bytes, sha256, sample_rate, content_type,"
        " received_at, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("old", 5, len(AUDIO_A), hashlib.sha256(AUDIO_A).hexdigest(), 16000, "x", 1.0, None),
    )
    conn.commit()
    conn.close()

    def upload(body: bytes) -> Upload:
        digest = hashlib.sha256(body).hexdigest()
        return Upload("old", 5, len(body), digest, 16000, "x", 2.0, None)

    ledger = Ledger(db)
    try:
        same = ledger.submit(upload(AUDIO_A)).result(10)
        other = ledger.submit(upload(AUDIO_B)).result(10)
    finally:
        ledger.close()
    assert (same.duplicate, same.conflict) == (True, False)
    assert (other.duplicate, other.conflict) == (False, True)
    assert (ledger.written, ledger.duplicates, ledger.conflicts) == (0, 1, 1)
    assert len(read_uploads(db)) == 1


def test_a_conflict_within_one_group_commit(tmp_path: Path) -> None:
    """Two bodies under one key in the same batch: the first is stored, the second refused."""
    ledger = Ledger(tmp_path / "l.sqlite")
    bodies = [AUDIO_A, AUDIO_B, AUDIO_A, AUDIO_B]
    try:
        futures = [
            ledger.submit(
                Upload("d", 1, len(b), hashlib.sha256(b).hexdigest(), 16000, "x", 1.0, None)
            )
            for b in bodies
        ]
        got = [(f.result(10).duplicate, f.result(10).conflict) for f in futures]
    finally:
        ledger.close()
    assert got == [(False, False), (False, True), (True, False), (False, True)]
    assert (ledger.written, ledger.duplicates, ledger.conflicts, ledger.pending) == (1, 1, 2, 0)


async def test_in_process_answer_names_device_and_sequence_and_no_digest(
    client: TestClient[Any, Any],
) -> None:
    """The 409 body names the key and nothing of the held upload (no digest, no bytes)."""
    headers = _headers("esp32-000123", 41)
    assert (await client.post(UPLOAD_PATH, data=AUDIO_A, headers=headers)).status == 200
    resp = await client.post(UPLOAD_PATH, data=AUDIO_B, headers=headers)
    assert resp.status == 409
    assert await resp.json() == _conflict("esp32-000123", 41)
