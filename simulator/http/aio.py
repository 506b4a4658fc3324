"""The aiohttp transport: one shared connection pool; per-request keep-alive or
``Connection: close``; its failures classified into the shared error kinds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from simulator.http.errors import ErrorKind
from simulator.http.transport import (
    Request,
    Response,
    SubmitViaSend,
    _flatten,
    _header_bytes,
    body_size,
    failure,
    parse_set_cookie,
)


def classify_aiohttp(exc: BaseException) -> ErrorKind:
    """aiohttp's exceptions in the shared vocabulary (:class:`ErrorKind`)."""
    import errno
    import ssl

    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return ErrorKind.TLS
        if isinstance(exc.os_error, ConnectionRefusedError):
            return ErrorKind.REFUSED
        if isinstance(exc.os_error, TimeoutError):
            return ErrorKind.CONNECT_TIMEOUT
        return ErrorKind.CONNECT_FAILED
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ErrorKind.TIMEOUT
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorKind.CLOSED
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ErrorKind.TRUNCATED
    if isinstance(exc, aiohttp.ClientResponseError):
        return ErrorKind.BAD_RESPONSE
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.TLS
    if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE:
        return ErrorKind.BROKEN_PIPE
    if isinstance(exc, ConnectionResetError | aiohttp.ClientOSError):
        return ErrorKind.RESET
    return ErrorKind.OTHER


class AiohttpTransport(SubmitViaSend):
    """aiohttp underneath: one pool for the whole fleet, no client-side cookie jar."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: Any = None

    def _ensure(self) -> Any:
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, ttl_dns_cache=None, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "scfleet/0.1"},
                auto_decompress=False,
            )
        return self._session

    async def start(self) -> None:
        self._ensure()

    async def send(self, req: Request) -> Response:
        session = self._ensure()
        headers = req.headers
        if not req.keep_alive:
            headers = {**headers, "Connection": "close"}
        if req.cookies:
            headers = {**headers, "Cookie": "; ".join(f"{k}={v}" for k, v in req.cookies.items())}
        data = _flatten(req.body)
        size = body_size(data)
        head = _header_bytes(req.method, req.path, headers, size)
        started = time.perf_counter()
        try:
            async with session.request(
                req.method,
                self.base_url + req.path,
                data=data,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                headers_at = time.perf_counter()
                body = await resp.read()
                ended = time.perf_counter()
                set_cookie = resp.headers.getall("Set-Cookie", ())
                jar, cleared = parse_set_cookie(set_cookie) if set_cookie else ({}, ())
                rhead = sum(len(k) + len(v) + 4 for k, v in resp.raw_headers) + 17
                return Response(
                    status=resp.status,
                    body=body,
                    headers=resp.headers,
                    started=started,
                    headers_at=headers_at,
                    ended=ended,
                    sent=head + size,
                    received=rhead + len(body),
                    set_cookies=jar,
                    cleared_cookies=cleared,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a counted failed request
            return failure(classify_aiohttp(exc), started, time.perf_counter())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
