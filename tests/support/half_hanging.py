"""A loopback server that answers every other upload only after 10 s, and the run that meets it:
10/s for 2 s with ``graceful_stop = "1s"``, so about half the iterations are cut by the stop.
Shared by the tests of how a cut is reported (summary note, stage table); ``every_nth_held``
is the same server for another share and hold (the graceful-stop stage test's)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

from raw_http import serving


class _EveryNthHeld(BaseHTTPRequestHandler):
    """200 ``ok`` to each POST; every ``nth`` one only after ``hold`` seconds (or ``release``).
    The counters are per server: :func:`every_nth_held` makes a subclass for each."""

    protocol_version = "HTTP/1.1"
    nth = 2
    hold = 10.0
    count = 0
    lock: threading.Lock
    release: threading.Event

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        cls = type(self)
        with cls.lock:
            cls.count += 1
            held = cls.count % cls.nth == 0
        if held:
            cls.release.wait(cls.hold)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def every_nth_held(nth: int, hold: float) -> Iterator[str]:
    """The URL of a server answering every ``nth`` upload only after ``hold`` seconds; its held
    requests are let go on exit."""

    class Held(_EveryNthHeld):
        lock = threading.Lock()
        release = threading.Event()

    Held.nth, Held.hold = nth, hold
    with serving(Held) as url:
        try:
            yield url
        finally:
            Held.release.set()


def every_other_hangs() -> contextlib.AbstractContextManager[str]:
    """The server's URL while it runs: every other upload answered only after 10 s."""
    return every_nth_held(2, 10.0)


#: The run against it: 10/s for 2 s, ``graceful_stop = "1s"``, a p(95) threshold that passes on
#: the requests that finish (its bound, 1 s, is below every cut request's time (1-3 s), far above a
#: finished one's, ~1 ms, so a loaded machine's slow answers do not fail it).
CUT_RUN_TOML = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 10
duration = "2s"
pre_allocated_devices = 30
graceful_stop = "1s"
[scenarios.up.device]
chunk_bytes = 200
[thresholds]
http_req_duration = ["p(95)<1000"]
[audio]
profiles = 1
seconds = 1
"""
