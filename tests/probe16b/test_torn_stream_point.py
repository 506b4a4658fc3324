"""A tick line the disk cut short is not read back as a second timeline point.

Found with ``--out`` on a 24 KB tmpfs: the write that failed left a line torn inside its
registry delta, its point whole; ``RunStream.timeline`` read that point back *and* kept it as
unwritten, so the run's timeline had t=4.005 twice (timeline.json, report.html, the CSV) and
the stage table summed that second's requests, failures, drops and cuts twice.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from simulator.metrics import Registry
from simulator.report.output import RunStream


class _Env:
    def __init__(self) -> None:
        self.registry = Registry()
        self.notes: list[str] = []


class _DiskFills:
    """A file that takes the start of the next write, up to its registry, then is full."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh

    def write(self, text: str) -> int:
        self.fh.write(text[: text.index('"registry"')])
        self.fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.fh.close()


def test_a_torn_tick_line_gives_its_point_once(tmp_path: Path) -> None:
    stream = RunStream(tmp_path, {"source": "x"})
    env = _Env()
    stream.tick(env, {"t": 1.0})  # type: ignore[arg-type]
    stream._fh = _DiskFills(stream._fh)
    stream.tick(env, {"t": 2.0})  # type: ignore[arg-type]
    stream.tick(env, {"t": 3.0})  # type: ignore[arg-type]
    assert stream.failed and '"point":{"t":2.0}' in (tmp_path / "run.ndjson").read_text()
    assert [p["t"] for p in stream.timeline()] == [1.0, 2.0, 3.0]
