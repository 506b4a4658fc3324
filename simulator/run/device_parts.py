"""Workers' device rows on their way to ``devices.csv``: part files merged as they are read.

A worker holds its segment's devices; ``devices.csv`` lists every device in scenario order,
then by global index, as a one-process run writes it. Each worker writes its rows to a part
file in that order instead of sending them in its final message: each line is the row's
finished ``devices.csv`` line led by a fixed-width key (scenario rank, global index), so the
coordinator's :class:`PartRows` merges the parts by comparing lines (``heapq.merge``: one line
per part in memory) and writes each line minus its key. It never parses or formats a row:
that cost 15 s of CPU for 1,000,000 devices (a ``DeviceRow`` and a ``csv`` row each). So the
coordinator never holds the fleet's rows (before: ~0.45 KiB per device, 443 MiB at peak for
1,000,000 devices), and a worker writes its rows instead of pickling them all at once.

The parts live in a scratch folder (the system's temp folder, ``TMPDIR``) that goes when the
run's result does (or at exit), so ``result.devices`` stays readable after the folder is
written; a worker whose coordinator was killed removes it (:func:`drop_scratch`). A
coordinator killed (SIGKILL) after its workers have ended cannot remove it, so the folder's
owner holds a lock on its ``.lock`` file for as long as it lives (the kernel lets go when the
process dies, however it dies) and the next run's scratch folder sweeps away every folder of
the kind whose lock it can take (:func:`sweep_stale`): a living run's never. Every run sweeps
at its start, one process or many (a glob of the temp folder). Older versions made folders
without a lock: those go once nothing in them has changed for :data:`UNLOCKED_STALE_AGE`.
Workers on
other machines (a Ray cluster) still send their rows; the coordinator spills each worker's
rows to a part as they arrive and lets them go.
"""

from __future__ import annotations

import csv
import fcntl
import heapq
import io
import operator
import os
import shutil
import signal
import stat
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

from simulator.run.device_row import VIRTUAL_COLUMNS, DeviceRow

#: a part's line: its key, ``key_format(rank) % index`` (fixed width, so lines sort by
#: scenario rank then global index), then its line of ``devices.csv`` in these columns
assert VIRTUAL_COLUMNS == (
    "scenario",
    "kind",
    "device_id",
    "requests",
    "ok",
    "failed",
    "next_sequence",
    "bytes_ok",
    "logins",
)
KEY_WIDTH = 16


def key_format(rank: int) -> str:
    """The %-format of a part line's key in scenario ``rank``: the global index follows."""
    assert 0 <= rank < 10**6
    return f"{rank:06d}%010d"


PREFIX = "scfleet-devices-"
LOCK = ".lock"
#: A folder without a ``.lock`` is an older version's (this one's gets its lock within
#: microseconds of being made): it goes once neither it nor anything in it has changed for this
#: long (seconds). Such a run may still be living, its folder unchanged from its start until its
#: workers end, and nothing tells (it records no PID and holds no lock), so the age is one a run
#: of an older version beside this one is not expected to reach: two days.
UNLOCKED_STALE_AGE = 2 * 24 * 3600.0
#: a test's hook: the coordinator kills itself (SIGKILL; "TERM": SIGTERM) once its workers'
#: parts are in, before ``devices.csv`` is written (tests/scfleet/test_device_rows_streamed.py,
#: test_workers_sigterm.py)
KILL_ENV = "SCFLEET_TEST_KILL_BEFORE_DEVICES_CSV"


class Scratch:
    """A temp folder for part files, removed when the last holder lets go (or at exit); held
    locked while it lives, so a later run can tell it from a killed run's (:func:`sweep_stale`)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX))
        # locked before it has its name: a sweep never sees this folder's .lock unlocked
        fd, name = tempfile.mkstemp(dir=self.path, prefix=".locking-")
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(name, self.path / LOCK)
        self._gone = weakref.finalize(self, _remove, str(self.path), fd)

    def part(self, name: str) -> Path:
        return self.path / f"{name}.csv"


def _remove(path: str, fd: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.close(fd)


def sweep_stale(where: str | None = None) -> list[Path]:
    """Remove the scratch folders of runs killed before they could (their ``.lock`` is free:
    its holder is dead), and older versions' folders (no ``.lock``) unchanged for
    :data:`UNLOCKED_STALE_AGE`; those removed. A folder whose lock is held is left, so is one
    without a lock that is younger (being made, or a living older run's), so is another user's."""
    removed = []
    now = time.time()
    for path in Path(where or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            fd = os.open(path / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if _unchanged_since(path, now - UNLOCKED_STALE_AGE):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # held: a living run's
            continue
        try:
            if os.fstat(fd).st_uid == os.getuid():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def _unchanged_since(path: Path, when: float) -> bool:
    """Whether ``path`` is this user's folder (not a link) and neither it nor any entry in it
    has changed since ``when`` (``time.time()`` seconds)."""
    try:
        st = path.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return False
        newest = st.st_mtime
        with os.scandir(path) as entries:
            for entry in entries:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        return False
    return newest < when


def killed_here_for_a_test() -> None:
    """The test hook :data:`KILL_ENV`: SIGKILL this process now (no clean-up runs), or send it
    SIGTERM (the run's signal handling takes it from here)."""
    how = os.environ.get(KILL_ENV)
    if how in ("1", "TERM"):
        os.kill(os.getpid(), signal.SIGKILL if how == "1" else signal.SIGTERM)


def drop_scratch(part: Path) -> None:
    """From a worker whose coordinator is gone (killed): nobody will merge or remove its
    parts, so the scratch folder goes now."""
    shutil.rmtree(part.parent, ignore_errors=True)


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write a part's keyed lines, in key order (the caller's); how many."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        for n, line in enumerate(lines, 1):  # noqa: B007 - the count is what is kept
            fh.write(line)
    return n


def write_part(path: Path, rows: Iterable[tuple[int, int, DeviceRow]]) -> int:
    """Write ``(scenario rank, global index, row)`` in that order (the caller's); how many.
    For rows sent by remote workers (Ray): made into lines by the csv module."""
    buf = io.StringIO()
    w = csv.writer(buf)

    def lines() -> Iterator[str]:
        for rank, index, row in rows:
            buf.seek(0)
            buf.truncate()
            w.writerow(row.cells(VIRTUAL_COLUMNS))
            yield key_format(rank) % index + buf.getvalue()

    return write_lines(path, lines())


def _read_part(path: Path) -> Iterator[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        yield from fh


class PartRows:
    """The workers' device rows, merged from their parts in ``devices.csv`` order when read:
    as finished lines (:meth:`csv_lines`, what ``devices.csv`` is written from) or as rows."""

    virtual_only = True

    def __init__(self, scratch: Scratch | None, parts: Iterable[tuple[Path, int]]) -> None:
        self._scratch = scratch  # keeps the parts until this is gone
        self.parts = list(parts)

    def __len__(self) -> int:
        return sum(n for _path, n in self.parts)

    def _merged(self) -> Iterator[str]:
        return heapq.merge(*(_read_part(p) for p, n in self.parts if n))

    def csv_lines(self, columns: tuple[str, ...]) -> Iterator[str]:
        """``devices.csv``'s lines: each part's line without its key (the board columns
        empty when a board took part). No row is parsed or made."""
        merged = self._merged()
        if len(columns) == len(VIRTUAL_COLUMNS):
            return map(operator.itemgetter(slice(KEY_WIDTH, None)), merged)
        pad = "," * (len(columns) - len(VIRTUAL_COLUMNS)) + "\r\n"
        return (line[KEY_WIDTH:-2] + pad for line in merged)

    def __iter__(self) -> Iterator[DeviceRow]:
        """The rows, parsed back (a library caller's ``result.devices``)."""
        for sc, kind, dev, req, ok, failed, seq, nbytes, logins in csv.reader(
            self.csv_lines(VIRTUAL_COLUMNS)
        ):
            yield DeviceRow(
                sc, kind, dev, int(req), int(ok), int(failed), int(seq), int(nbytes), int(logins)
            )
