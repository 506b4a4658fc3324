"""A loopback server that answers every other upload only after 10 s, and the run that meets it:
10/s for 2 s with ``graceful_stop = "1s"``, so about half the iterations are cut by the stop.
Shared by the tests of how a cut is reported (summary note, stage table)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _EverySecondHangs(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()
    release = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with _EverySecondHangs.lock:
            _EverySecondHangs.count += 1
            hang = _EverySecondHangs.count % 2 == 0
        if hang:
            _EverySecondHangs.release.wait(10)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def every_other_hangs() -> Iterator[str]:
    """The server's URL while it runs; its hung requests are let go on exit."""
    _EverySecondHangs.count = 0
    _EverySecondHangs.release.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _EverySecondHangs)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        _EverySecondHangs.release.set()
        srv.shutdown()
        srv.server_close()


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
