"""The fast client's syscalls per request on a keep-alive connection: one write, one read.

The kernel's part of a request is mostly its one write (the TCP loopback delivery, the
target's wake-up included): a head written apart from its body, or a write the kernel takes in
part (then EPOLLOUT on, a second write, EPOLLOUT off) would add a syscall and a trip round the
event loop per request without any test noticing (README Benchmarks, seventeenth session:
1 writev, 1 read per request measured with perf). Counted with the kernel's per-thread I/O
accounting (/proc/thread-self/io: ``syscw`` counts write/writev calls, ``syscr`` reads),
on the event loop a run uses (uvloop), against a server on another thread.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from raw_http import read_request

from simulator.executors.runtime import new_loop
from simulator.http import FastTransport, Request

REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
    b'\r\n{"status":"ok"}'
)
IO = Path("/proc/thread-self/io")
REQUESTS = 40


def _io() -> dict[str, int]:
    """This thread's I/O counters (one read syscall: counted in the next reading)."""
    fd = os.open(IO, os.O_RDONLY)
    try:
        text = os.read(fd, 4096).decode()
    finally:
        os.close(fd)
    return {k: int(v) for k, _, v in (line.partition(": ") for line in text.splitlines())}


def _serve(listener: socket.socket) -> None:
    """Answer each request (head + Content-Length body) with :data:`REPLY`, in one send."""
    conn, _ = listener.accept()
    with conn:
        rest = read_request(conn, b"")
        while rest is not None:
            conn.sendall(REPLY)
            rest = read_request(conn, rest)


@pytest.mark.skipif(not IO.exists(), reason="no per-thread I/O accounting (/proc/thread-self/io)")
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(memoryview(bytes(32000)), id="32KB-memoryview"),
        pytest.param(bytes(1000), id="1KB-bytes"),
        pytest.param([bytes(1000), memoryview(bytes(31000))], id="32KB-two-parts"),
    ],
)
def test_one_write_and_one_read_per_request(body: bytes | memoryview | list[bytes]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    server = threading.Thread(target=_serve, args=(listener,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    async def main() -> tuple[dict[str, int], dict[str, int], list[int]]:
        t = FastTransport(url, timeout=10)
        try:
            req = Request("POST", "/up", {"X-Device-ID": "d1"}, body)
            first = await t.send(req)  # connects: its syscalls are not a request's
            assert first.status == 200, first.error
            before = _io()
            sent = []
            for _ in range(REQUESTS):
                r = await t.send(req)
                assert r.status == 200, r.error
                sent.append(r.sent)
            after = _io()
            assert t.connects == 1
            return before, after, sent
        finally:
            await t.close()

    loop = new_loop()
    try:
        before, after, sent = loop.run_until_complete(main())
    finally:
        loop.close()
        listener.close()
    writes = after["syscw"] - before["syscw"]
    reads = after["syscr"] - before["syscr"] - 1  # the first _io()'s own read
    assert writes == REQUESTS, f"{writes} write syscalls for {REQUESTS} requests"
    assert after["wchar"] - before["wchar"] == sum(sent)  # each write took its request whole
    assert reads == REQUESTS, f"{reads} read syscalls for {REQUESTS} responses"


def test_io_counters_see_a_split_write() -> None:
    """The counters the test above trusts do count writev and write apart (a sanity check, so
    that a kernel that stopped counting one of them fails here, not silently above)."""
    if not IO.exists():
        pytest.skip("no per-thread I/O accounting (/proc/thread-self/io)")
    a, b = socket.socketpair()
    with a, b:
        before = _io()
        os.writev(a.fileno(), [b"head", b"body"])
        os.write(a.fileno(), b"more")
        after = _io()
    assert after["syscw"] - before["syscw"] == 2
    assert after["wchar"] - before["wchar"] == 12
