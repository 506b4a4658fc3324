"""A board's worker process: esptool's logger is a process-wide singleton, so each board is
flashed in its own spawned process, where a small logger turns esptool's progress into
:mod:`~hw_bridge.flash.jobs` events on the queue the parent watches."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from hw_bridge.flash.jobs import BoardResult, Chunk, Finished, FlashEvent, FlashJob, Tuning
from hw_bridge.flash.operations import flash_board

Emit = Callable[[FlashEvent], None]


def run_worker(job: FlashJob, events: Any, cfg_path: str | None, tuning: Tuning) -> None:
    """Process entry: flash ``job``'s board and put ``(port, event)`` pairs on ``events``,
    the last one :class:`Finished`."""
    if cfg_path:
        os.environ["ESPTOOL_CFGFILE"] = cfg_path
    if tuning.lazy_trace:
        from esptool import loader

        loader.HexFormatter.__str__ = lambda self: "<packet>"
    port = job.port

    def emit(event: FlashEvent) -> None:
        events.put((port, event))

    try:
        recent = install_logger(emit)
        result = flash_board(job, emit, tuning.connect_retries, recent)
    except BaseException as exc:  # never let a board die silently
        result = BoardResult(port=port, ok=False, error=f"worker crashed: {exc!r}")
    emit(Finished(result))


def install_logger(emit: Emit) -> list[str]:
    """Route esptool's logger into events; returns the buffer of recent plain lines."""
    from esp_pylib.logger import EspLogBase
    from esptool.logger import log

    recent: list[str] = []

    def keep(text: str) -> None:
        recent.append(text)
        del recent[:-20]

    class _Task:
        def __init__(self, total: int) -> None:
            self.total = total
            self.n = 0

        def update(self, advance: int = 1, description: str | None = None) -> None:
            self.n += advance
            if description:
                keep(description)  # "Writing at 0x...": where a failure happened
            emit(Chunk(self.n, self.total))

    class QueueLogger(EspLogBase):
        def _keep(self, *args: Any) -> None:
            text = " ".join(str(a) for a in args).strip()
            if text:
                keep(text)

        def print(self, *args: Any, **kwargs: Any) -> None:
            self._keep(*args)

        def err(self, *args: Any, suggestion: str | None = None) -> None:
            self._keep(*args)

        def warn(self, *args: Any, suggestion: str | None = None) -> None:
            self._keep(*args)

        def note(self, *args: Any) -> None:
            self._keep(*args)

        def hint(self, *args: Any) -> None:
            pass

        def debug(self, *args: Any) -> None:
            pass

        def set_verbosity(self, mode: int | str) -> None:
            pass

        def progress_bar(self, *args: Any, **kwargs: Any) -> None:
            pass

        def progress(self, total: int, *args: Any, **kwargs: Any) -> Any:
            @contextlib.contextmanager
            def cm() -> Iterator[_Task]:
                yield _Task(total)

            return cm()

    log.set_logger(QueueLogger())
    return recent
