"""The batching ledger: rows arrive intact, batches flush on time and on close."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reference_server.ledger import Ledger, Upload, read_uploads


def _upload(i: int, seq: int | None = None) -> Upload:
    return Upload(
        device_id=f"esp32-{i:06d}",
        sequence=seq,
        bytes=2 * i + 2,
        sha256=f"{i:064x}",
        sample_rate=16000,
        content_type="application/octet-stream",
        received_at=1.5 + i,
        remote="127.0.0.1",
    )


def test_rows_round_trip_in_order(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    rows = [_upload(i, seq=i if i % 2 else None) for i in range(25)]
    for row in rows:
        ledger.record(row)
    ledger.close()
    got = read_uploads(tmp_path / "l.sqlite")
    assert [g.id for g in got] == list(range(1, 26))
    assert [(g.device_id, g.sequence, g.bytes, g.sha256, g.received_at) for g in got] == [
        (r.device_id, r.sequence, r.bytes, r.sha256, r.received_at) for r in rows
    ]


def test_flushes_within_interval_without_close(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", flush_interval_s=0.05)
    try:
        ledger.record(_upload(1))
        deadline = time.monotonic() + 5
        while ledger.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ledger.written == 1 and ledger.pending == 0
        assert len(read_uploads(tmp_path / "l.sqlite")) == 1
    finally:
        ledger.close()


def test_full_batch_wakes_writer_early(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", flush_interval_s=30.0, batch_rows=10)
    try:
        for i in range(10):
            ledger.record(_upload(i))
        assert ledger.flush(timeout=5.0)
        assert ledger.written == 10
    finally:
        ledger.close()


def test_close_drains_everything(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", flush_interval_s=30.0, batch_rows=10**6)
    for i in range(1000):
        ledger.record(_upload(i))
    ledger.close()
    assert len(read_uploads(tmp_path / "l.sqlite")) == 1000


def test_read_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_uploads(tmp_path / "nope.sqlite")
