"""Blocking starts in a thread whose result is never lost to a cancel.

``await loop.run_in_executor(...)`` cancelled (Ctrl-C: the run's cancel) while the thread runs
raises at once, but the thread cannot be stopped: it goes on to open the port or start the
emulated boards, and nobody ever holds what it made, so it stays open or running until the
process exits. :func:`run_owned` gives that result to ``release`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


async def run_owned(
    executor: Executor | None, start: Callable[[], T], release: Callable[[T], object]
) -> T:
    """``start()`` on ``executor``; if the caller is cancelled before it has the result, the
    result is ``release``d: by the thread once ``start`` returns, or here if it had already
    returned (the cancel came in the turn that was handing it over). The cancel is never
    delayed by the thread."""
    loop = asyncio.get_running_loop()
    lock = threading.Lock()
    abandoned = False
    handed: list[T] = []  # what start() made, once the caller may take it

    def job() -> T:
        made = start()
        with lock:
            if not abandoned:
                handed.append(made)
                return made
        _release(release, made)
        return made

    try:
        return await loop.run_in_executor(executor, job)
    except asyncio.CancelledError:
        with lock:
            abandoned = True
        for made in handed:
            _release(release, made)
        raise


def _release(release: Callable[[T], object], made: T) -> None:
    try:
        release(made)
    except Exception:  # noqa: BLE001 - a failed release must not hide the cancel that caused it
        logging.getLogger(__name__).exception("releasing an abandoned start failed")
