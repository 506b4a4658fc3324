"""Loopback HTTP/1.1 servers for tests. On a bare socket, for an answer's timing or bytes exact
(every Nth request held, one request at a time, a malformed answer): ``loopback`` runs the
accept loop, ``read_request`` reads one request off a connection and ``answer_raw`` writes
given bytes back (``answer_each``: every request of a kept-alive connection, by its path);
``send_to_raw`` sends one request through scfleet's transport to such an answer. With a stdlib
handler: ``serving``; ``counting`` counts the requests it gets (a run that must refuse before
its first request)."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulator.http import Request, Response, make_transport


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


def answer_raw(
    answers: bytes | Mapping[str, bytes], *, hold: float = 0.0, half_close: bool = False
) -> Callable[[socket.socket, threading.Event], None]:
    """A ``serve`` for :func:`loopback` that reads one request's head and writes ``answers``
    back as they are (a mapping: the answer for the request's path), then holds the connection
    open ``hold`` seconds (framing, not the close, must end the answer) or, ``half_close``,
    ends its side and waits for the client's close; then closes it."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                got = conn.recv(65536)
                if not got:
                    return
                buf += got
            if isinstance(answers, bytes):
                conn.sendall(answers)
            else:
                conn.sendall(answers[buf.split(b" ")[1].decode()])
            if half_close:
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)  # until the client closes
            if hold:
                time.sleep(hold)

    return serve


def answer_each(answers: Mapping[str, bytes]) -> Callable[[socket.socket, threading.Event], None]:
    """A ``serve`` for :func:`loopback` answering every request of a kept-alive connection
    (heads only: GETs) with the bytes for its path, never closing first: framing alone must
    end each answer (a k6 script's requests one after another on one connection)."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            buf = b""
            while got := conn.recv(65536):
                buf += got
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    conn.sendall(answers[head.split(b" ")[1].decode()])

    return serve


async def send_to_raw(
    answer: bytes | Mapping[str, bytes],
    request: Request,
    *,
    kind: str = "fast",
    hold: float = 0.0,
    timeout: float = 1.0,
) -> tuple[Response, float]:
    """``request`` sent through scfleet's ``kind`` transport (``timeout`` s) to a loopback
    server that writes ``answer`` back and holds the connection ``hold`` s (:func:`answer_raw`):
    the response and the seconds it took."""
    with loopback(answer_raw(answer, hold=hold), threaded=True) as url:
        transport = make_transport(url, timeout, kind)
        try:
            t0 = time.perf_counter()
            resp = await transport.send(request)
            return resp, time.perf_counter() - t0
        finally:
            await transport.close()


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up before its answer is written (a run's stop cutting a request) is
    a load test's everyday case, not the server's error: the stdlib printed its traceback to
    stderr, where a test reading the CLI's stderr for "Traceback" found it (probe17's export
    test, under load: BrokenPipeError in the answering server's handler thread)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """The URL of a ``ThreadingHTTPServer`` on 127.0.0.1 running ``handler`` (a daemon thread
    per connection) while the block runs. It polls every 0.05 s: the shutdown at the end waits
    for the poll (0.5 s by default)."""
    srv = _QuietServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


class Counting(BaseHTTPRequestHandler):
    """200 with an empty body to every GET and POST; ``hits`` counts them (a subclass per
    server: :func:`counting`)."""

    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def counting() -> Iterator[tuple[str, type[Counting]]]:
    """A :class:`Counting` server's URL and its handler class (``handler.hits``)."""
    handler = type("H", (Counting,), {"hits": 0})
    with serving(handler) as url:
        yield url, handler
