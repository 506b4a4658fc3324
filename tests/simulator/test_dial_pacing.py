"""The fast client paces its dials: a burst of requests that finds no idle connection starts
at most ``DIALS_PER_TURN`` connects in the loop turn it came in, and a request waiting for a
connection takes whichever comes first, one a finished request frees or one its dial opens
(Go's net/http, so k6, does the same). Before, each such request dialled its own connection at
once: at 16,000/s (32 KB to nginx, two workers) a loop that fell behind dialled ~130 µs of CPU
per request on top of the request itself, fell further behind and ended with one connection
per device and a second of drops. Real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from simulator.http import fast
from simulator.http.errors import ErrorKind
from simulator.http.fast import FastTransport
from simulator.http.transport import Request, Response

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _server(release: asyncio.Event | None = None, hold: int = 0) -> asyncio.Server:
    """Answers each request (a GET: its head ends the request) with 200 ``ok``, keep-alive.
    With ``release``, the answers wait until it is set; with ``hold`` n, until n requests
    are in (a barrier: every one of them needs its own connection)."""
    arrived = 0
    all_in = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                arrived += 1
                if hold and arrived >= hold:
                    all_in.set()
                if hold:
                    await all_in.wait()
                if release is not None:
                    await release.wait()
                writer.write(_OK)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _url(srv: asyncio.Server) -> str:
    return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


async def test_a_burst_dials_at_most_dials_per_turn_in_its_turn() -> None:
    """200 requests submitted in one turn with no idle connection: DIALS_PER_TURN dials are
    under way at the end of that turn (before: 200), and all 200 are answered.

    The server answers only when all 200 requests are in, so every request needs a connection
    of its own: pacing delays dials, it never leaves a request without one."""
    n = 200
    srv = await _server(hold=n)
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    got: list[Response] = []
    try:
        for _ in range(n):
            tr.submit(Request("GET", "/x"), got.append)
        assert len(tr._connecting) == fast.DIALS_PER_TURN < n
        for _ in range(500):
            if len(got) == n:
                break
            await asyncio.sleep(0.01)
        assert [r.status for r in got] == [200] * n
        assert tr.connects == n  # no more sockets than requests in flight
    finally:
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_a_waiting_request_takes_a_connection_freed_before_its_dial(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request that found no idle connection is served on the connection a finished request
    frees, while its own dial is still under way (held here until the end); the dial's
    connection then goes to the pool. Before, it waited for its own dial."""
    release = asyncio.Event()
    srv = await _server(release)
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    first: list[Response] = []
    second: list[Response] = []
    dial_go = asyncio.Event()
    real_connect = tr._connect
    try:
        tr.submit(Request("GET", "/a"), first.append)  # dials, then waits for its answer
        for _ in range(500):
            if tr.connects == 1 and tr._all and not tr._connecting:
                break
            await asyncio.sleep(0.01)
        assert tr.connects == 1

        async def slow_connect() -> fast._Conn:
            await dial_go.wait()
            return await real_connect()

        monkeypatch.setattr(tr, "_connect", slow_connect)
        tr.submit(Request("GET", "/b"), second.append)  # no idle connection: waits, dials
        assert len(tr._connecting) == 1
        release.set()  # /a is answered: its connection is free
        for _ in range(500):
            if second:
                break
            await asyncio.sleep(0.01)
        assert [r.status for r in first] == [200]
        assert [r.status for r in second] == [200], "the waiting request was not served"
        assert second[0].connecting == 0.0 and tr.connects == 1  # on /a's connection
        dial_go.set()
        for _ in range(500):
            if not tr._connecting:
                break
            await asyncio.sleep(0.01)
        assert tr.connects == 2 and len(tr._idle) == 2  # the dial's connection: to the pool
    finally:
        dial_go.set()
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_a_refused_burst_fails_every_request(free_port: int) -> None:
    """Every request of a burst to a closed port fails as refused, none is left waiting: a
    failed dial fails the longest-waiting request, and the next turn dials for the rest."""
    n = 3 * fast.DIALS_PER_TURN + 5
    tr = FastTransport(f"http://127.0.0.1:{free_port}", timeout=5.0)
    await tr.start()
    got: list[Response] = []
    try:
        for _ in range(n):
            tr.submit(Request("GET", "/x"), got.append)
        for _ in range(500):
            if len(got) == n:
                break
            await asyncio.sleep(0.01)
        assert len(got) == n and all(r.kind is ErrorKind.REFUSED for r in got)
        assert not tr._waiting and tr._dialing == 0
    finally:
        await tr.close()


async def test_a_pool_that_must_grow_grows_by_half_a_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 100 connections open and all busy, 200 more requests waiting: the turn after the
    burst's dials up to DIAL_GROWTH of the pool (50), not DIALS_PER_TURN (32). A loop in long
    turns carries one request per connection a turn, so a pool grown by 32 a turn lagged the
    need by a second at 16,000/s on a busy machine. Dials are held here so they can be
    counted."""
    release = asyncio.Event()
    release.set()  # the first 100 are answered at once: 100 idle connections
    srv = await _server(release, hold=100)
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    got: list[Response] = []
    dial_go = asyncio.Event()
    real_connect = tr._connect
    try:
        for _ in range(100):
            tr.submit(Request("GET", "/x"), got.append)
        for _ in range(500):
            if len(got) == 100 and len(tr._idle) == 100 and not tr._connecting:
                break
            await asyncio.sleep(0.01)
        assert len(tr._all) == 100 and len(tr._idle) == 100
        release.clear()  # from now on the 100 stay busy

        async def held() -> fast._Conn:
            await dial_go.wait()
            return await real_connect()

        monkeypatch.setattr(tr, "_connect", held)
        first = tr._dial_budget
        for _ in range(300):  # 100 take the idle connections, 200 wait
            tr.submit(Request("GET", "/x"), got.append)
        assert len(tr._waiting) == 200 and len(tr._connecting) == first
        await asyncio.sleep(0)  # one turn: its refill (armed by the burst) runs first
        assert len(tr._connecting) == first + int(100 * fast.DIAL_GROWTH) == first + 50
    finally:
        release.set()
        dial_go.set()
        await tr.close()
        srv.close()
        await srv.wait_closed()
