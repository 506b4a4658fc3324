"""A response head whose lines end in a bare LF is read as Go's net/http (so k6) and aiohttp
read it: the answer counts, with its status and body.

Found by probe17 against a loopback server answering ``HTTP/1.1 200 OK\\nContent-Length:
2\\n\\nok`` (small embedded HTTP servers do): aiohttp read 200 "ok", the fast client waited for a
CRLF blank line that never came and failed the request as ``closed-before-answer`` (or as a
timeout, on a connection kept open), so ``http_req_failed`` broke where k6's held.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from k6_side import needs_k6, run_k6
from raw_http import answer_each, loopback, read_request

from simulator.http import Request, make_transport


def _answer(data: bytes, split: bool) -> Callable[[socket.socket, threading.Event], None]:
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            buf = b""
            for _ in range(2):  # two requests on the keep-alive connection
                rest = read_request(conn, buf)
                if rest is None:
                    return
                buf = rest
                if split:  # the head in two reads: the buffered parse, not the one-read path
                    conn.sendall(data[:14])
                    time.sleep(0.05)
                    conn.sendall(data[14:])
                else:
                    conn.sendall(data)
            time.sleep(0.5)

    return serve


@pytest.mark.parametrize("split", [False, True], ids=["one-read", "split"])
@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
@pytest.mark.parametrize(
    ("data", "body"),
    [
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", b"ok"),
        (b"HTTP/1.1 201 Created\nContent-Length: 6\n\n\r\n\r\nok", b"\r\n\r\nok"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\nok", b"ok"),  # a CRLF status line, then LF
        (b"HTTP/1.1 200 OK\r\nContent-Length: 6\n\n\r\n\r\nok", b"\r\n\r\nok"),
        (b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\r\nok\r\n0\r\n\r\n", b"ok"),
        # a bare-LF status line, then CRLF lines: read as a CRLF head, the Content-Length
        # (looked up after a CRLF) was missed and the body read to the close (a timeout)
        (b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", b"ok"),
        (b"HTTP/1.1 200\nContent-Length: 2\r\n\r\nok", b"ok"),  # no reason phrase (Go: ok)
    ],
    ids=[
        "lf",
        "crlfcrlf-in-body",
        "mixed",
        "mixed-crlfcrlf-in-body",
        "chunked",
        "lf-status-crlf-headers",
        "lf-header-among-crlf",
        "lf-status-crlf-chunked",
        "lf-status-no-reason",
    ],
)
async def test_a_head_of_bare_lf_lines_is_an_answer(
    kind: str, split: bool, data: bytes, body: bytes
) -> None:
    with loopback(_answer(data, split), threaded=True) as url:
        transport = make_transport(url, 2.0, kind)
        try:
            for _ in range(2):
                resp = await transport.send(Request("GET", "/x"))
                assert (resp.status, resp.error, resp.body) == (int(data[9:12]), None, body)
                framing = "transfer-encoding" if b"chunked" in data else "content-length"
                assert framing in {k.lower() for k in resp.headers}
        finally:
            await transport.close()


#: the heads read as CRLF ones that ended in a CRLF blank line after a bare-LF line
LATE_CRLF = {
    "/status": b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
    "/among": b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok",
    "/noreason": b"HTTP/1.1 200\nContent-Length: 2\r\n\r\nok",
}


@pytest.mark.slow
@needs_k6
def test_k6_reads_them_so(tmp_path: Path) -> None:
    """k6 1.1.0 side by side: each a 200 "ok" on a connection held open (the 2 bytes framed
    by the Content-Length, not the close)."""
    script = (
        "import http from 'k6/http';\n"
        "export const options = { iterations: 1, vus: 1 };\n"
        "export default function () {\n"
        f"  for (const p of {sorted(LATE_CRLF)!r}) {{\n"
        "    const r = http.get('URL' + p, { timeout: '3s' });\n"
        "    if (r.status !== 200 || r.body !== 'ok') throw new Error(p + ' ' + r.status);\n"
        "  }\n"
        "  http.get('URL/status', { tags: { name: 'done' } });\n"
        "}\n"
    )

    with loopback(answer_each(LATE_CRLF), threaded=True) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    metrics = summary["metrics"]
    assert metrics["http_reqs"]["count"] == len(LATE_CRLF) + 1, metrics  # no throw
    assert metrics["http_req_failed"]["passes"] == 0, metrics
    assert metrics["http_req_duration"]["max"] < 1000, metrics  # not read to a close
