"""One device's line in ``devices.csv``: a virtual device's or a board's, every column typed.

Boards (hw_bridge) fill the board columns; virtual devices leave them ``None``. The file has
the board columns only when a board took part, so a virtual-only run's file is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


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


def columns_for(rows: list[DeviceRow]) -> tuple[str, ...]:
    """The columns of ``devices.csv``: the board columns only when a board took part."""
    return ALL_COLUMNS if any(r.board is not None for r in rows) else VIRTUAL_COLUMNS
