"""Loopback HTTP/1.1 servers on a bare socket, for tests that need an answer's timing exact
(every Nth request held, one request at a time): ``loopback`` runs the accept loop and
``read_request`` reads one request off a connection. Shared by the percentile and stage tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


def read_request(conn: socket.socket, buf: bytes) -> bytes | None:
    """Reads one request (head and Content-Length body) from ``buf`` plus ``conn``; returns
    what follows it (keep-alive's next request), or None when the peer closed first."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(buf) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    return buf[length:]


@contextlib.contextmanager
def loopback(
    serve: Callable[[socket.socket, threading.Event], None],
    *,
    threaded: bool,
    backlog: int | None = None,
) -> Iterator[str]:
    """The URL of a server handing each accepted connection to ``serve`` (with the stop event),
    on a thread of its own or, ``threaded=False``, one connection at a time."""
    lsock = socket.create_server(("127.0.0.1", 0), backlog=backlog)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            if threaded:
                threading.Thread(target=serve, args=(conn, stop), daemon=True).start()
            else:
                serve(conn, stop)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{lsock.getsockname()[1]}"
    finally:
        stop.set()
        lsock.close()
