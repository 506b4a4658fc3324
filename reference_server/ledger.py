"""The upload ledger: every accepted upload as one SQLite row, written in batches.

At 200-2000 uploads/s a commit per request would stall the event loop on fsync, so handlers only
append to an in-memory queue and a writer thread flushes it every ~100 ms (or sooner once enough
rows are waiting). :meth:`Ledger.close` drains the queue, so a clean shutdown loses nothing; the
end-to-end tests compare this ledger with what the load generator says it sent.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from dataclasses import astuple, dataclass, fields
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    sequence INTEGER NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    sample_rate INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    received_at REAL NOT NULL,
    remote TEXT
)
"""
_COLUMNS = (
    "device_id",
    "sequence",
    "bytes",
    "sha256",
    "sample_rate",
    "content_type",
    "received_at",
    "remote",
)
_INSERT = f"INSERT INTO uploads ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


@dataclass(frozen=True)
class Upload:
    """One accepted upload as the ledger stores it (``id`` is assigned by SQLite)."""

    device_id: str
    sequence: int | None
    bytes: int
    sha256: str
    sample_rate: int
    content_type: str
    received_at: float
    remote: str | None
    id: int | None = None


def _connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_SCHEMA)
    conn.commit()
    return conn


class Ledger:
    """Batching writer; :meth:`record` never touches the disk, so it is safe on the event loop."""

    def __init__(
        self, db_path: Path, *, flush_interval_s: float = 0.1, batch_rows: int = 500
    ) -> None:
        self.db_path = Path(db_path)
        self._interval = flush_interval_s
        self._batch_rows = batch_rows
        self._queue: queue.SimpleQueue[tuple[object, ...]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._recorded = 0
        self._written = 0
        self._error: BaseException | None = None
        self._conn = _connect(self.db_path)  # fail at start, not at the first flush
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    @property
    def recorded(self) -> int:
        return self._recorded

    @property
    def written(self) -> int:
        return self._written

    @property
    def pending(self) -> int:
        return self._recorded - self._written

    def record(self, upload: Upload) -> None:
        """Queue one row; the writer thread commits it within ~``flush_interval_s``."""
        self._queue.put(astuple(upload)[: len(_COLUMNS)])
        self._recorded += 1
        if self._recorded - self._written >= self._batch_rows:
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything recorded so far is committed; False on timeout."""
        target = self._recorded
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(
                lambda: self._written >= target or not self._thread.is_alive(), timeout
            ) and (self._written >= target)

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, commit and close; called on shutdown before the process exits."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._error is not None:
            raise RuntimeError(f"ledger writer failed: {self._error}") from self._error

    def _drain(self) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []
        while True:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                return rows

    def _run(self) -> None:
        conn = self._conn
        try:
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                stopping = self._stopping.is_set()
                rows = self._drain()
                if rows:
                    with conn:
                        conn.executemany(_INSERT, rows)
                    with self._cond:
                        self._written += len(rows)
                        self._cond.notify_all()
                if stopping and self._queue.empty():
                    break
        except BaseException as exc:  # surfaced by close(); the server keeps answering
            self._error = exc
        finally:
            with self._cond:
                self._cond.notify_all()
            conn.close()


def read_uploads(db_path: Path | str) -> list[Upload]:
    """Every ledger row in arrival order; what tests and run reports compare against."""
    path = Path(db_path)
    if not path.exists():
        raise FileNotFoundError(f"no ledger at {path}")
    conn = sqlite3.connect(path, timeout=30.0)
    try:
        names = [f.name for f in fields(Upload)]
        cursor = conn.execute(f"SELECT {', '.join(names)} FROM uploads ORDER BY id")
        return [Upload(*row) for row in cursor]
    finally:
        conn.close()
