"""What ``hw flash`` shows: a rich progress bar per board on a terminal (a line per step
otherwise), then a table with one row per board."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from hw_bridge.flash.jobs import (
    BoardResult,
    Chunk,
    FileStart,
    FlashEvent,
    Identity,
    Note,
    Stage,
    Total,
    Written,
)


@dataclass
class _Progress:
    stage: str = "waiting"
    done: int = 0
    total: int = 0


class ProgressView:
    """Per-board progress: ``display`` is ``"rich"``, ``"plain"`` or ``"none"``."""

    def __init__(self, display: str, ports: Sequence[str], out: IO[str]) -> None:
        self.display = display
        self.out = out
        self.state = {p: _Progress() for p in ports}
        self._file_base: dict[str, tuple[int, int]] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        if display == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.fields[port]:<24}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[stage]}"),
                console=Console(file=out),
            )
            self._progress.start()
            for p in ports:
                self._tasks[p] = self._progress.add_task("", total=None, port=p, stage="waiting")

    def _line(self, text: str) -> None:
        if self.display == "plain":
            print(text, file=self.out, flush=True)

    def event(self, port: str, event: FlashEvent) -> None:
        st = self.state[port]
        match event:
            case Stage(text):
                st.stage = text
                self._line(f"{port}: {st.stage}")
            case Note(text):
                self._line(f"{port}: {text}")
            case Identity(chip, mac):
                self._line(f"{port}: {chip} {mac}")
            case Total(nbytes):
                st.total = nbytes
            case FileStart(base, size):
                self._file_base[port] = (base, size)
            case Chunk(n, total):
                base, size = self._file_base.get(port, (0, 0))
                st.done = base + size * min(n, max(1, total)) // max(1, total)
            case Written(done):
                st.done = done
                if self.display == "plain" and st.total:
                    self._line(f"{port}: {st.done}/{st.total} bytes")
        if self._progress is not None:
            self._progress.update(
                self._tasks[port], completed=st.done, total=st.total or None, stage=st.stage
            )

    def finish(self, result: BoardResult) -> None:
        st = self.state[result.port]
        st.stage = "done" if result.ok else "FAILED"
        if self._progress is not None:
            self._progress.update(self._tasks[result.port], stage=st.stage)
        self._line(f"{result.port}: {'ok' if result.ok else 'FAILED: ' + result.error}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def render_table(results: Sequence[BoardResult], out: IO[str], *, rich: bool) -> None:
    """The final summary: one row per board."""
    headers = ("port", "chip", "MAC", "bytes", "seconds", "verified", "error")
    rows = [
        (
            r.port,
            r.chip or "-",
            r.mac or "-",
            str(r.bytes_written),
            f"{r.seconds:.1f}",
            "yes" if r.verified else "no",
            r.error,
        )
        for r in results
    ]
    if rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
