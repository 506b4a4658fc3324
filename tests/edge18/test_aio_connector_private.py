"""The aiohttp transport swaps aiohttp's protocol factory for one counting each connection's
reads, through a private attribute (``_factory``, guarded: left alone when it is not the
expected ``functools.partial``). The loop it needed came from a second private attribute,
``_loop``, unguarded: an aiohttp without it (a rename) failed every aiohttp run at its start
with AttributeError, where a missing ``_factory`` only lost the count. The loop now comes from
the factory being replaced."""

from __future__ import annotations

import asyncio
import functools

import aiohttp
import pytest

from simulator.http import aio


async def test_no_private_loop_attribute_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    init = aiohttp.TCPConnector.__init__

    def without_loop(self: aiohttp.TCPConnector, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        self.__dict__.pop("_loop", None)
        assert not hasattr(self, "_loop")

    monkeypatch.setattr(aiohttp.TCPConnector, "__init__", without_loop)
    connector = aio._connector(4)
    factory = connector._factory
    assert isinstance(factory, functools.partial)
    assert factory.func is aio._counting_protocol()
    assert factory.keywords["loop"] is asyncio.get_running_loop()
