"""One device's line in ``devices.csv``: a virtual device's or a board's, every column typed.

Boards (hw_bridge) fill the board columns; virtual devices leave them ``None``. The file has
the board columns only when a board took part, so a virtual-only run's file is unchanged.

A run's rows are a :class:`DeviceTable`: its sources (each scenario's devices, the workers'
rows merged from their part files, the boards) are read when ``devices.csv`` is written, never
copied into one list first, so a million devices never sit in memory twice as rows.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Protocol, TextIO


@dataclass(frozen=True, slots=True)
class DeviceRow:
    scenario: str
    kind: str  # the device kind, or "physical" for a board
    device_id: str
    requests: int
    ok: int
    failed: int
    next_sequence: int
    bytes_ok: int
    logins: int
    # a board's columns (None for a virtual device)
    board: str | None = None
    state: str | None = None
    lost: int | None = None
    rejoined: int | None = None
    dropped_chunks: int | None = None
    clock_offset_us: int | None = None
    ping_rtt_us: int | None = None
    bad_lines: int | None = None
    protocol_errors: int | None = None

    def cells(self, columns: tuple[str, ...]) -> list[Any]:
        """The row's values in ``columns`` order (``None`` is written as an empty cell)."""
        return ["" if (v := getattr(self, c)) is None else v for c in columns]


ALL_COLUMNS = tuple(f.name for f in fields(DeviceRow))
VIRTUAL_COLUMNS = ALL_COLUMNS[: ALL_COLUMNS.index("board")]


class Rows(Protocol):
    """Device rows that can be counted and read (again): a list, or a source made lazily."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[DeviceRow]: ...


class VirtualRows(Rows, Protocol):
    """A lazy source of virtual devices' rows only (no board columns to look for)."""

    virtual_only: bool


class LineRows(VirtualRows, Protocol):
    """A lazy source that writes its own finished ``devices.csv`` lines (no row per device)."""

    def csv_lines(self, columns: tuple[str, ...]) -> Iterable[str]: ...


class DeviceTable:
    """A run's device rows in ``devices.csv`` order, source after source, made as they are
    read: each lazy source (:class:`VirtualRows`) yields its rows one at a time."""

    def __init__(self, sources: Iterable[Rows] = ()) -> None:
        self.sources = list(sources)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def __iter__(self) -> Iterator[DeviceRow]:
        for source in self.sources:
            yield from source

    @property
    def has_boards(self) -> bool:
        return any(
            not getattr(s, "virtual_only", False) and any(r.board is not None for r in s)
            for s in self.sources
        )


def columns_for(rows: Rows) -> tuple[str, ...]:
    """The columns of ``devices.csv``: the board columns only when a board took part."""
    boards = (
        rows.has_boards if isinstance(rows, DeviceTable) else any(r.board is not None for r in rows)
    )
    return ALL_COLUMNS if boards else VIRTUAL_COLUMNS


#: text the csv module writes as it is in a row of several cells (no comma, quote, CR or LF)
_PLAIN = re.compile(r'[^,"\r\n]*\Z').match


def csv_cell(text: str) -> str:
    """``text`` as the csv module (its default dialect) writes it in a row of several cells."""
    return text if _PLAIN(text) else '"' + text.replace('"', '""') + '"'


def plain(text: str) -> bool:
    """Whether ``text`` is written as it is (an ID pattern that is plain makes plain IDs:
    an int formatted by a spec without a comma or a quote has neither)."""
    return _PLAIN(text) is not None


def line_format(scenario: str, kind: str, columns: tuple[str, ...], lead: str = "") -> str:
    """A %-format for a virtual device's ``devices.csv`` line in ``columns`` (the board
    columns empty): ``lead``'s fields, then the device ID (%s, a csv cell) and its six counts
    (%d) in VIRTUAL_COLUMNS order. It writes what the csv module writes for the row's cells,
    at a third of the cost (test_device_rows_streamed checks both agree)."""
    head = f"{csv_cell(scenario)},{csv_cell(kind)}".replace("%", "%%")
    pad = "," * (len(columns) - len(VIRTUAL_COLUMNS))
    return f"{lead}{head},%s,%d,%d,%d,%d,%d,%d{pad}\r\n"


def write_csv(fh: TextIO, rows: Rows) -> None:
    """``devices.csv`` (``fh`` opened with ``newline=""``): the header, then each source's
    rows; a :class:`LineRows` source writes its finished lines, others go through ``csv``."""
    columns = columns_for(rows)
    w = csv.writer(fh)
    w.writerow(columns)
    for source in rows.sources if isinstance(rows, DeviceTable) else [rows]:
        lines = getattr(source, "csv_lines", None)
        if lines is not None:
            fh.writelines(lines(columns))
        else:
            w.writerows(r.cells(columns) for r in source)
