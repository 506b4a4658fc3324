"""The fast client caps its dials: requests that find no idle connection have at most
``DIALS_IN_FLIGHT`` connects under way at once, however many loop turns they span, and a
request waiting for a connection takes whichever comes first, one a finished request frees or
one a dial opens (Go's net/http, so k6, does the same). Before 6fc6e30 each such request dialled
its own connection at once: at 16,000/s (32 KB to nginx, two workers) a loop that fell behind
dialled ~130 µs of CPU per request on top of the request itself, fell further behind and ended
with one connection per device and a second of drops; paced per turn (32, then half the pool a
turn) the same storm came slower: 2,000-2,250 connections at 8,000-9,000/s (1 KB), where a cap
in flight opened 230-490. Once a request has waited ``GROW_AFTER`` (a target slow to answer:
the generator frees its connections within a turn), up to half the pool may be dialling at
once. A request waiting longer than the timeout fails as a connect timeout, once. Real
servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

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


async def test_a_burst_dials_at_most_dials_in_flight() -> None:
    """200 requests submitted in one turn with no idle connection: DIALS_IN_FLIGHT dials are
    under way at the end of that turn (before 6fc6e30: 200), and all 200 are answered.

    The server answers only when all 200 requests are in, so every request needs a connection
    of its own: the cap delays dials, it never leaves a request without one."""
    n = 200
    srv = await _server(hold=n)
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    got: list[Response] = []
    try:
        for _ in range(n):
            tr.submit(Request("GET", "/x"), got.append)
        assert len(tr._connecting) == fast.DIALS_IN_FLIGHT < n
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
    """Every request of a burst to a closed port fails as refused, once, none is left waiting:
    a failed dial fails the longest-waiting request and its slot dials for the next one."""
    n = 3 * fast.DIALS_IN_FLIGHT + 5
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


async def test_dials_are_capped_in_flight_not_per_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """100 requests waiting while the dials are held (a slow connect): across several loop
    turns, DIALS_IN_FLIGHT dials stay under way, not more. Before: 32 more each turn (and then
    half the pool a turn), so a loop behind on a connect storm kept adding to it. Once the dials
    complete, every request is answered and no more connections were made than requests.
    Dials are held here so they can be counted."""
    srv = await _server()
    tr = FastTransport(_url(srv), timeout=10.0)
    await tr.start()
    got: list[Response] = []
    dial_go = asyncio.Event()
    real_connect = tr._connect

    async def held() -> fast._Conn:
        await dial_go.wait()
        return await real_connect()

    monkeypatch.setattr(tr, "_connect", held)
    n = 100
    try:
        for _ in range(n):
            tr.submit(Request("GET", "/x"), got.append)
        for _ in range(5):
            await asyncio.sleep(0)
            assert len(tr._connecting) == tr._dialing == fast.DIALS_IN_FLIGHT
        await asyncio.sleep(0.05)
        assert len(tr._connecting) == fast.DIALS_IN_FLIGHT
        assert len(tr._waiting) == n
        dial_go.set()
        for _ in range(500):
            if len(got) == n:
                break
            await asyncio.sleep(0.01)
        assert [r.status for r in got] == [200] * n
        assert tr.connects <= n and not tr._waiting
    finally:
        dial_go.set()
        await tr.close()
        srv.close()
        await srv.wait_closed()


async def test_requests_behind_the_cap_time_out_once_at_the_timeout() -> None:
    """A target that never completes a connect (its listen backlog full: the SYNs go
    unanswered): 3 × DIALS_IN_FLIGHT + 1 requests each fail as a connect timeout, once, about
    the timeout after they began — not one timeout per DIALS_IN_FLIGHT of them ahead (4 s for
    the last without the wait's own deadline, FastTransport._expire) and never left waiting."""
    timeout = 1.0
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)  # never accepted: one queued connect fills it, the rest hang
    port = lsock.getsockname()[1]
    fillers = []
    tr = FastTransport(f"http://127.0.0.1:{port}", timeout=timeout)
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            fillers.append(c)
        await tr.start()
        n = 3 * fast.DIALS_IN_FLIGHT + 1
        got: list[Response] = []
        t0 = time.perf_counter()
        for _ in range(n):
            tr.submit(Request("GET", "/x"), got.append)
        for _ in range(400):
            if len(got) == n:
                break
            await asyncio.sleep(0.01)
        took = time.perf_counter() - t0
        assert len(got) == n, f"{n - len(got)} requests still waiting after {took:.1f} s"
        assert took < 2.5 * timeout, took
        assert all(r.kind is ErrorKind.CONNECT_TIMEOUT for r in got), {r.kind for r in got}
        assert all(r.ended - r.started >= timeout * 0.9 for r in got)
        assert not tr._waiting
        await asyncio.sleep(0.3)  # the dials' own timeouts: no request answered twice
        assert len(got) == n
    finally:
        await tr.close()
        for c in fillers:
            c.close()
        lsock.close()


async def test_a_pool_short_for_a_slow_target_grows_once_a_request_waited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100 connections open and all busy (the server holds its answers), 200 more requests
    waiting, dials held: at first DIALS_IN_FLIGHT dials are under way; once the longest wait
    passes GROW_AFTER, the next request queued lets DIAL_GROWTH of the pool be under way (50),
    not 8: capped at 8, a pool short for a slowed nginx at 20,000/s (32 KB) grew 8 a connect
    and dropped 3.5-7.3 % of the arrivals in 5 runs of 8. Dials held to count them."""
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
        for _ in range(300):  # 100 take the idle connections, 200 wait
            tr.submit(Request("GET", "/x"), got.append)
        assert len(tr._waiting) == 200 and len(tr._connecting) == fast.DIALS_IN_FLIGHT
        await asyncio.sleep(fast.GROW_AFTER * 2)
        assert len(tr._connecting) == fast.DIALS_IN_FLIGHT  # nothing dials without an event
        tr.submit(Request("GET", "/x"), got.append)
        assert len(tr._connecting) == int(100 * fast.DIAL_GROWTH) == 50
    finally:
        release.set()
        dial_go.set()
        await tr.close()
        srv.close()
        await srv.wait_closed()
