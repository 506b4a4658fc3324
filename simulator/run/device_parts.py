"""Workers' device rows on their way to ``devices.csv``: part files merged as they are read.

A worker holds its segment's devices; ``devices.csv`` lists every device in scenario order,
then by global index, as a one-process run writes it. Each worker writes its rows to a part
file in that order (a CSV line per device, led by the scenario's rank and the global index)
instead of sending them in its final message, and the coordinator's :class:`PartRows` merges
the parts (``heapq.merge``: one line per part in memory) when ``devices.csv`` is written. So
the coordinator never holds the fleet's rows (before: ~0.45 KiB per device, 443 MiB at peak
for 1,000,000 devices), and a worker writes its rows instead of pickling them all at once.

The parts live in a scratch folder (the system's temp folder, ``TMPDIR``) that goes when the
run's result does (or at exit), so ``result.devices`` stays readable after the folder is
written; a worker whose coordinator was killed removes it (:func:`drop_scratch`). Workers on other machines (a Ray cluster) still send their rows; the coordinator
spills each worker's rows to a part as they arrive and lets them go.
"""

from __future__ import annotations

import csv
import heapq
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

from simulator.run.device_row import VIRTUAL_COLUMNS, DeviceRow

#: a part's line: (scenario rank, global index) then a virtual device's row in these columns
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


class Scratch:
    """A temp folder for part files, removed when the last holder lets go (or at exit)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="scfleet-devices-"))
        self._gone = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def part(self, name: str) -> Path:
        return self.path / f"{name}.csv"


def drop_scratch(part: Path) -> None:
    """From a worker whose coordinator is gone (killed): nobody will merge or remove its
    parts, so the scratch folder goes now."""
    shutil.rmtree(part.parent, ignore_errors=True)


def write_part(path: Path, rows: Iterable[tuple[int, int, DeviceRow]]) -> int:
    """Write ``(scenario rank, global index, row)`` in that order (the caller's); how many."""
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        for rank, index, row in rows:
            w.writerow((rank, index, *row.cells(VIRTUAL_COLUMNS)))
            n += 1
    return n


def _read_part(path: Path) -> Iterator[tuple[int, int, DeviceRow]]:
    with open(path, newline="") as fh:
        for rank, index, sc, kind, dev, req, ok, failed, seq, nbytes, logins in csv.reader(fh):
            row = DeviceRow(
                sc, kind, dev, int(req), int(ok), int(failed), int(seq), int(nbytes), int(logins)
            )
            yield int(rank), int(index), row


class PartRows:
    """The workers' device rows, merged from their parts in ``devices.csv`` order when read."""

    virtual_only = True

    def __init__(self, scratch: Scratch | None, parts: Iterable[tuple[Path, int]]) -> None:
        self._scratch = scratch  # keeps the parts until this is gone
        self.parts = list(parts)

    def __len__(self) -> int:
        return sum(n for _path, n in self.parts)

    def __iter__(self) -> Iterator[DeviceRow]:
        merged = heapq.merge(*(_read_part(p) for p, n in self.parts if n), key=_key)
        return (row for _rank, _index, row in merged)


def _key(item: tuple[int, int, DeviceRow]) -> tuple[int, int]:
    return item[0], item[1]
