"""One device's line in ``devices.csv``: a virtual device's or a board's, every column typed.

Boards (hw_bridge) fill the board columns; virtual devices leave them ``None``. The file has
the board columns only when a board took part, so a virtual-only run's file is unchanged.

A run's rows are a :class:`DeviceTable`: its sources (each scenario's devices, the workers'
rows merged from their part files, the boards) are read when ``devices.csv`` is written, never
copied into one list first, so a million devices never sit in memory twice as rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Protocol


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
