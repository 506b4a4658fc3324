"""The group-committing ledger: a resolved future means a committed row; duplicates of
(device, sequence) store nothing; concurrent submissions share commits."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from reference_server.ledger import Ledger, LedgerClosed, Upload, read_uploads
from scfleet_core.errors import ConfigError


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
    futures = [ledger.submit(row) for row in rows]
    assert [f.result(10).duplicate for f in futures] == [False] * 25
    ledger.close()
    got = read_uploads(tmp_path / "l.sqlite")
    assert [g.id for g in got] == list(range(1, 26))
    assert [(g.device_id, g.sequence, g.bytes, g.sha256, g.received_at) for g in got] == [
        (r.device_id, r.sequence, r.bytes, r.sha256, r.received_at) for r in rows
    ]


def test_resolved_means_committed_for_another_connection(tmp_path: Path) -> None:
    """Once the future resolves, a separate reader (another process would be the same) sees the
    row: nothing acknowledged waits in memory."""
    ledger = Ledger(tmp_path / "l.sqlite")
    try:
        for i in range(20):
            assert ledger.submit(_upload(i, seq=0)).result(10).duplicate is False
            reader = sqlite3.connect(tmp_path / "l.sqlite")
            (count,) = reader.execute("SELECT count(*) FROM uploads").fetchone()
            reader.close()
            assert count == i + 1
        assert ledger.pending == 0 and ledger.written == 20
    finally:
        ledger.close()


def test_duplicate_device_sequence_stores_one_row(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    first = ledger.submit(_upload(1, seq=7)).result(10)
    again = ledger.submit(_upload(1, seq=7)).result(10)
    other_dev = ledger.submit(_upload(2, seq=7)).result(10)
    no_seq = [ledger.submit(_upload(1, seq=None)).result(10) for _ in range(2)]
    assert (first.duplicate, again.duplicate, other_dev.duplicate) == (False, True, False)
    assert [s.duplicate for s in no_seq] == [False, False]  # no sequence: never de-duplicated
    assert (ledger.written, ledger.duplicates) == (4, 1)
    ledger.close()
    rows = read_uploads(tmp_path / "l.sqlite")
    assert [(r.device_id, r.sequence) for r in rows] == [
        ("esp32-000001", 7),
        ("esp32-000002", 7),
        ("esp32-000001", None),
        ("esp32-000001", None),
    ]
    reopened = Ledger(tmp_path / "l.sqlite")  # the index survives a restart
    try:
        assert reopened.submit(_upload(1, seq=7)).result(10).duplicate is True
    finally:
        reopened.close()


def test_duplicates_within_one_group_commit(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    futures = [ledger.submit(_upload(3, seq=i % 5)) for i in range(50)]
    dups = [f.result(10).duplicate for f in futures]
    ledger.close()
    assert dups.count(False) == 5 and dups.count(True) == 45
    assert len(read_uploads(tmp_path / "l.sqlite")) == 5


def test_concurrent_submitters_share_commits(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(100):
                assert ledger.submit(_upload(w, seq=i)).result(30).duplicate is False
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ledger.close()
    assert not errors
    assert ledger.written == 1600
    assert ledger.commits < 1600  # waiting rows were committed together
    assert len(read_uploads(tmp_path / "l.sqlite")) == 1600


def test_submit_after_close_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.close()
    with pytest.raises(LedgerClosed):
        ledger.submit(_upload(1))


def test_writer_failure_fails_the_waiting_uploads(tmp_path: Path) -> None:
    """A failed commit must never resolve as stored (the server would answer 200)."""
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.submit(_upload(0)).result(10)
    ledger._conn.execute("DROP TABLE uploads")  # the next insert fails inside the writer
    fut = ledger.submit(_upload(1))
    with pytest.raises(LedgerClosed):
        fut.result(10)
    with pytest.raises(LedgerClosed):
        ledger.submit(_upload(2))
    with pytest.raises(RuntimeError, match="ledger writer failed"):
        ledger.close()


def test_old_ledger_with_duplicates_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite"
    ledger = Ledger(db)
    ledger.close()
    conn = sqlite3.connect(db)
    conn.execute("DROP INDEX uploads_device_sequence")
    row = ("d", 1, 2, "x", 16000, "application/octet-stream", 1.0, None)
    conn.executemany(
        "INSERT INTO uploads (device_id, sequence, bytes, sha256, sample_rate, content_type,"
        " received_at, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [row, row],
    )
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="duplicate"):
        Ledger(db)


def test_read_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_uploads(tmp_path / "nope.sqlite")


def test_cancelled_waiter_does_not_kill_the_writer(tmp_path: Path) -> None:
    """A request cancelled while awaiting its commit (client gone, shutdown) cancels its future;
    the writer must keep going and the row is still stored."""
    ledger = Ledger(tmp_path / "l.sqlite")
    try:
        futures = [ledger.submit(_upload(i, seq=i)) for i in range(200)]
        for f in futures[::2]:
            f.cancel()  # succeeds for those the writer has not picked up yet
        assert ledger.submit(_upload(999, seq=1)).result(10).duplicate is False
        assert all(f.result(10).duplicate is False for f in futures if not f.cancelled())
    finally:
        ledger.close()
    assert len(read_uploads(tmp_path / "l.sqlite")) == 201
