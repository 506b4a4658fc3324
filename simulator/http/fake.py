"""The in-memory transport for tests and library users (like httpx's ``MockTransport``): a
handler answers each :class:`~simulator.http.transport.Request`; no network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from simulator.http.errors import ErrorKind
from simulator.http.transport import Request, Response, SubmitViaSend, body_size


@dataclass
class FakeReply:
    status: int = 200
    body: bytes = b'{"status":"ok"}'
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    set_cookies: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[FakeReply] | FakeReply]


class FakeTransport(SubmitViaSend):
    """In-memory transport: a handler decides each reply; requests are kept for assertions."""

    def __init__(self, handler: Handler | None = None, *, keep: bool = True) -> None:
        self.handler = handler or (lambda req: FakeReply())
        self.requests: list[Request] = []
        self.keep = keep
        self.closed = False

    async def start(self) -> None:
        pass

    async def send(self, req: Request) -> Response:
        if self.keep:
            self.requests.append(req)
        started = time.perf_counter()
        reply = self.handler(req)
        if asyncio.iscoroutine(reply) or isinstance(reply, Awaitable):
            reply = await reply
        assert isinstance(reply, FakeReply)
        ended = time.perf_counter()
        size = body_size(req.body)
        if reply.error:
            kind = ErrorKind.from_tag(reply.error)
            return Response(
                status=0,
                error=reply.error,
                started=started,
                headers_at=ended,
                ended=ended,
                kind=kind,
            )
        return Response(
            status=reply.status,
            body=reply.body,
            headers=reply.headers,
            started=started,
            headers_at=ended,
            ended=ended,
            sent=size,
            received=len(reply.body),
            set_cookies=dict(reply.set_cookies),
        )

    async def close(self) -> None:
        self.closed = True
