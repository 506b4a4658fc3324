"""Connection guard: a header deadline and a connection cap in front of aiohttp's protocol.

aiohttp has no deadline for a request head, so 500 slowloris connections (opened and left
silent, or fed a header byte at a time) are held forever, and with a 256-descriptor limit the
server then cannot accept a normal request at all. Each connection here is wrapped:

- *Header deadline*: a request head must be complete within ``header_timeout`` of the
  connection opening, or of the first byte of the next request on a kept-alive connection;
  otherwise the connection is closed. (Body reads have their own deadline in the handlers.)
- *Connection cap*: at ``max_connections`` a new connection evicts the oldest one that is not
  inside a request (silent, half-sent or idle keep-alive); if every connection is busy with a
  request, the newcomer gets ``503`` and is closed. The default cap stays below the
  descriptor limit, so ``accept()`` never fails for lack of descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT_S = 15.0
DEFAULT_BODY_TIMEOUT_S = 60.0
_FD_RESERVE = 64  # databases, pool pipes, epoll, std streams, the listener
_FD_PER_WORKER = 4
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: 34\r\nConnection: close\r\n\r\n"
    b'{"error": "too many connections"}\n'
)


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one (at most 65536); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    want = min(want, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 65536


def default_max_connections(analysis_workers: int) -> int:
    """What fits under the descriptor limit after the server's own descriptors."""
    limit = raise_fd_limit()
    return max(8, limit - _FD_RESERVE - _FD_PER_WORKER * analysis_workers)


class _Guarded(asyncio.Protocol):
    """Forwards every callback to aiohttp's protocol and keeps the header deadline."""

    __slots__ = ("guard", "inner", "transport", "busy", "timer", "closed", "admitted")

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.busy = False  # inside a request handler
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False  # refused at the door: aiohttp never saw it
        self.admitted = False

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.guard.admit(self):
            self.closed = True
            transport.write(_REFUSAL)  # type: ignore[attr-defined]
            transport.close()
            return
        self.admitted = True
        self.inner.connection_made(transport)
        self.arm()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.busy and self.timer is None:
            self.arm()  # the first byte of a request head on a kept-alive connection
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.closed:
            return None
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.guard.forget(self)
        if self.admitted:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # -- guard -----------------------------------------------------------------------------------
    def arm(self) -> None:
        self.disarm()
        self.timer = self.guard.loop.call_later(self.guard.header_timeout, self.header_deadline)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def header_deadline(self) -> None:
        self.timer = None
        if not self.busy:
            self.guard.stats["header_timeouts"] += 1
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class ConnectionGuard:
    """Builds the protocol factory for ``loop.create_server`` and the request middleware."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_connections: int,
        header_timeout: float,
    ) -> None:
        self.loop = loop
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.conns: dict[_Guarded, None] = {}  # insertion-ordered: oldest first
        self.by_handler: dict[Any, _Guarded] = {}
        self.stats = {"refused": 0, "evicted": 0, "header_timeouts": 0, "open": 0}

    def factory(self, make_inner: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            inner = make_inner()
            return _Guarded(self, inner)

        return make

    def admit(self, conn: _Guarded) -> bool:
        if len(self.conns) >= self.max_connections:
            victim = next((c for c in self.conns if not c.busy), None)
            if victim is None:
                self.stats["refused"] += 1
                return False
            self.stats["evicted"] += 1
            self._drop(victim)
            victim.disarm()
            victim.close()
        self.conns[conn] = None
        self.by_handler[conn.inner] = conn
        self.stats["open"] = len(self.conns)
        return True

    def _drop(self, conn: _Guarded) -> None:
        self.conns.pop(conn, None)
        if self.by_handler.get(conn.inner) is conn:
            del self.by_handler[conn.inner]

    def forget(self, conn: _Guarded) -> None:
        self._drop(conn)
        self.stats["open"] = len(self.conns)

    def request_started(self, handler: Any) -> _Guarded | None:
        conn = self.by_handler.get(handler)
        if conn is not None:
            conn.busy = True
            conn.disarm()
        return conn

    @staticmethod
    def request_finished(conn: _Guarded | None) -> None:
        if conn is not None:
            conn.busy = False
