"""The upload ledger: every accepted upload as one SQLite row, committed before it is answered.

An ingest server must not acknowledge what it has not stored, so a handler awaits the commit of
its row before answering 200. A commit per request would stall at fsync-bound rates, so a writer
thread does *group commit*: it takes every row waiting at that moment, inserts them in one
transaction, commits once and then resolves all their futures. Concurrent requests share one
commit; a lone request pays one. The database is in WAL mode with ``synchronous=NORMAL``: a
committed row survives the server process being killed (it is in the WAL, written before the
answer); surviving a power cut as well would need ``synchronous=FULL``.

Uploads are de-duplicated on ``(device_id, sequence)`` by a partial unique index, so a device
that retries a chunk with the same ``X-Sequence`` after a lost answer stores one row and learns it
was a duplicate. A retry carries the same body, so it is a duplicate only when the held row's
``sha256`` (the body's, stored with every row since the first ledger) is the new one's; the same
key with another body is a *conflict* (a device that reset its counter and numbers new audio from
0 again): nothing is stored and the server says so, where it used to answer it as a retry and drop
the audio. The digest is the row's own column, so it persists exactly as the row does (committed
before the answer, in the WAL through a kill -9) and costs no memory; it is read only for a key
already held. Uploads without a sequence are never de-duplicated.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from scfleet_core.errors import ConfigError

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
_UNIQUE = (
    "CREATE UNIQUE INDEX IF NOT EXISTS uploads_device_sequence "
    "ON uploads (device_id, sequence) WHERE sequence IS NOT NULL"
)
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
_INSERT = (
    f"INSERT OR IGNORE INTO uploads ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_COLUMNS))})"
)
#: the body digest of the row already holding a (device, sequence): through the unique index
_HELD = "SELECT sha256 FROM uploads WHERE device_id = ? AND sequence = ?"
_DEVICE, _SEQUENCE, _SHA256 = (_COLUMNS.index(c) for c in ("device_id", "sequence", "sha256"))


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


@dataclass(frozen=True)
class Stored:
    """What a committed :meth:`Ledger.submit` resolves to."""

    duplicate: bool  # (device_id, sequence) was already in the ledger with this body: no new row
    conflict: bool = False  # ... held with another body: no new row, the upload is refused


#: A new row: neither a duplicate nor a conflict. Also the answer ``--unsafe-ack-before-commit``
#: gives before the ledger has looked (reference_server.app), when neither is known yet.
NEW = Stored(duplicate=False)
_DUPLICATE = Stored(duplicate=True)
_CONFLICT = Stored(duplicate=False, conflict=True)


class LedgerClosed(RuntimeError):
    """A row was submitted after :meth:`Ledger.close`, or the writer died."""


def _connect(db_path: Path) -> sqlite3.Connection:
    return open_named(db_path, _open)


def open_named(db_path: Path, opener: Callable[[Path], sqlite3.Connection]) -> sqlite3.Connection:
    """``opener(db_path)``, the database set up; one that cannot be (disk full, an I/O error)
    is one line naming it: before, an ``sqlite3.OperationalError`` traceback ended the
    server's start. The ledger's and the accounts' databases alike."""
    try:
        return opener(db_path)
    except (sqlite3.Error, OSError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"cannot open: {why}", source=str(db_path)) from None


def _open(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_SCHEMA)
    try:
        conn.execute(_UNIQUE)
    except sqlite3.IntegrityError:
        conn.close()
        raise ConfigError(
            "ledger holds duplicate (device, sequence) rows from an older server version; "
            "use a new --data-dir",
            source=str(db_path),
        ) from None
    conn.commit()
    return conn


_Item = tuple[tuple[object, ...], "Future[Stored]"]


class Ledger:
    """Group-committing writer; :meth:`submit` never touches the disk, so it is loop-safe."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._submitted = 0
        self._written = 0
        self._duplicates = 0
        self._conflicts = 0
        self._commits = 0
        self._error: BaseException | None = None
        self._conn = _connect(self.db_path)  # fail at start, not at the first upload
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        """New rows committed."""
        return self._written

    @property
    def duplicates(self) -> int:
        """Submissions answered as duplicates (no new row)."""
        return self._duplicates

    @property
    def conflicts(self) -> int:
        """Submissions refused: their (device, sequence) is held with another body (no row)."""
        return self._conflicts

    @property
    def commits(self) -> int:
        """Transactions committed; ``written / commits`` is the mean group size."""
        return self._commits

    @property
    def pending(self) -> int:
        """Rows submitted but not yet committed (their requests are still waiting)."""
        return self._submitted - self._written - self._duplicates - self._conflicts

    def submit(self, upload: Upload) -> Future[Stored]:
        """Queue one row; the future resolves once it is committed (or found a duplicate or a
        conflict)."""
        fut: Future[Stored] = Future()
        with self._lock:
            if self._closed or self._error is not None:
                raise LedgerClosed(f"ledger writer stopped: {self._error or 'closed'}")
            self._submitted += 1
            self._queue.put((astuple(upload)[: len(_COLUMNS)], fut))
        return fut

    def close(self, timeout: float = 30.0) -> None:
        """Commit what was submitted, stop the writer and close the database."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        self._thread.join(timeout)
        if self._error is not None:
            raise RuntimeError(f"ledger writer failed: {self._error}") from self._error

    def _take_batch(self, first: _Item) -> tuple[list[_Item], bool]:
        batch = [first]
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is None:
                return batch, True
            batch.append(item)

    def _commit(self, batch: list[_Item]) -> list[Stored]:
        conn = self._conn
        out = []
        with conn:
            for row, _ in batch:
                if conn.execute(_INSERT, row).rowcount:
                    out.append(NEW)
                    continue
                # Not inserted: the key is held (by a row of this very batch, too: the same
                # transaction). A retry of it carries the same body; another body is new audio
                # under an old key, and answering it as a retry would lose it unsaid.
                held = conn.execute(_HELD, (row[_DEVICE], row[_SEQUENCE])).fetchone()
                same = held is not None and held[0] == row[_SHA256]
                out.append(_DUPLICATE if same else _CONFLICT)
        return out

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                batch, stop = self._take_batch(first)
                # A request cancelled while waiting (client gone, shutdown) cancels its future;
                # its row is still stored (stored-but-unanswered is safe). Futures marked
                # running here can no longer be cancelled, so resolving them cannot fail.
                waiting = [fut.set_running_or_notify_cancel() for _, fut in batch]
                try:
                    answers = self._commit(batch)
                except BaseException as exc:
                    for (_, fut), wait in zip(batch, waiting, strict=True):
                        if wait:
                            fut.set_exception(LedgerClosed(f"ledger write failed: {exc}"))
                    raise
                n_dup = sum(a is _DUPLICATE for a in answers)  # identity: no dataclass __eq__
                n_conflict = sum(a is _CONFLICT for a in answers)
                self._written += len(batch) - n_dup - n_conflict
                self._duplicates += n_dup
                self._conflicts += n_conflict
                self._commits += 1
                for (_, fut), answer, wait in zip(batch, answers, waiting, strict=True):
                    if wait:
                        fut.set_result(answer)
        except BaseException as exc:  # surfaced by close(); uploads then get 503, never 200
            with self._lock:
                self._error = exc
            while True:  # fail whatever is still queued rather than leave it waiting
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[1].set_running_or_notify_cancel():
                    item[1].set_exception(LedgerClosed(f"ledger writer failed: {exc}"))
        finally:
            self._conn.close()


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
