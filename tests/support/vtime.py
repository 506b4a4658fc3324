"""An event loop on virtual time: sleeping advances the clock instantly.

Executor tests run minutes of schedule in milliseconds and get exact, repeatable times.
Tests write `import vtime`: tests/support is on pytest's pythonpath (pyproject.toml), the one
home instead of a loader by path in each file.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Selector(selectors.SelectSelector):
    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.loop.now += timeout
        elif not ready and timeout is None:
            raise RuntimeError("virtual-time loop would block forever (nothing scheduled)")
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        sel = _Selector()
        super().__init__(selector=sel)
        sel.loop = self
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
