"""A chunked body's size lines and trailers are read as Go's net/http 1.24 (so k6 1.1) reads
them, on a raw loopback server holding the connection open (framing, not the close, ends it).

Size lines: Go reads one to its LF, which a CR must come just before, with no other CR in it
(a bare LF is refused in chunk lines since CVE-2025-22871, unlike in a head: a head's bare-LF
lines are read, tests/left19/test_lf_line_crlf_blank_line.py); trailing blanks are dropped, then
the extension, and the size is 1-16 hex digits. The fast client looked for a CRLF instead: a
bare-LF size line waited for one (a timeout where k6 fails at once), and "2\\r\\r\\n", " 2" and
"2 ;x" were read as 2 where k6 fails the request.

Trailers: Go reads them only once a CRLF CRLF is within their first 4096 bytes, then up to the
first empty line; a bare-LF blank line alone never ends them (k6 times out too, so does this
client), a longer trailer fails ('suspiciously long trailer'), so does a line without a colon.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from k6_side import needs_k6, run_k6
from raw_http import loopback, send_to_raw

from simulator.http import Request

H = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
END = b"2\r\nok\r\n0\r\n"  # the last-chunk line, the trailers next
#: path -> (answer, k6 1.1.0's verdict: "ok" (200 "ok"), "bad" (fails at once), "timeout")
CASES = {
    "/crlf": (H + END + b"\r\n", "ok"),
    "/size-lf": (H + b"2\nok\r\n0\r\n\r\n", "bad"),  # 'chunked line ends with bare LF'
    "/all-lf": (H + b"2\nok\n0\n\n", "bad"),
    "/last-lf": (H + b"2\r\nok\r\n0\n\r\n", "bad"),
    "/cr-in-size": (H + b"2\r\r\nok\r\n0\r\n\r\n", "bad"),  # 'invalid CR in chunked line'
    "/lead-space": (H + b" 2\r\nok\r\n0\r\n\r\n", "bad"),  # 'invalid byte in chunk length'
    "/space-ext": (H + b"2 ;x=1\r\nok\r\n0\r\n\r\n", "bad"),
    "/trail-blank": (H + b"2 \t\r\nok\r\n0\r\n\r\n", "ok"),
    "/ext": (H + b"2;x=1\r\nok\r\n0\r\n\r\n", "ok"),
    "/size-17": (H + b"00000000000000002\r\nok\r\n0\r\n\r\n", "bad"),
    "/trailer": (H + END + b"X-T: 1\r\n\r\n", "ok"),
    "/trailer-mixed": (H + END + b"X-T: 1\nY: 2\r\n\r\n", "ok"),
    "/trailer-first-empty": (H + END + b"X-T: 1\n\r\n\r\n", "ok"),  # ends at "\n\r\n"
    "/trailer-4096": (H + END + b"X-T: " + b"a" * 4087 + b"\r\n\r\n", "ok"),
    "/trailer-4097": (H + END + b"X-T: " + b"a" * 4088 + b"\r\n\r\n", "bad"),
    "/trailer-no-colon": (H + END + b"bad\r\n\r\n", "bad"),
    "/trailer-blank-lf": (H + END + b"\n", "timeout"),
    "/trailer-lf-lf": (H + END + b"X-T: 1\n\n", "timeout"),
    "/trailer-lf-crlf": (H + END + b"X-T: 1\n\r\n", "timeout"),
}
TIMEOUT = 0.5


def verdict(status: int, body: bytes | str, timed_out: bool) -> str:
    if status == 200 and body in (b"ok", "ok"):
        return "ok"
    return "timeout" if timed_out else "bad"


@pytest.mark.parametrize("path", list(CASES))
async def test_the_fast_client_reads_chunk_lines_as_k6(path: str) -> None:
    answer, want = CASES[path]
    resp, _ = await send_to_raw(answer, Request("GET", path), hold=3.0, timeout=TIMEOUT)
    assert verdict(resp.status, resp.body, resp.error == "timeout") == want, resp.error


@pytest.mark.slow
@needs_k6
def test_k6_reads_them_so(tmp_path: Path) -> None:
    """k6 1.1.0 side by side, a new connection per request, each held open by the server."""
    wants = {path: want for path, (_, want) in CASES.items()}
    script = (
        "import http from 'k6/http';\n"
        "import { check } from 'k6';\n"
        "export const options = { iterations: 1, vus: 1, noConnectionReuse: true };\n"
        f"const WANT = {json.dumps(wants)};\n"
        "export default function () {\n"
        "  for (const p of Object.keys(WANT)) {\n"
        f"    const r = http.get('URL' + p, {{ timeout: '{TIMEOUT}s' }});\n"
        "    const got = r.status === 200 && r.body === 'ok' ? 'ok'\n"
        "      : r.error_code === 1050 ? 'timeout' : 'bad';\n"
        "    check(got, { [p + ' ' + got]: (g) => g === WANT[p] });\n"
        "  }\n"
        "}\n"
    )

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                if not (got := conn.recv(65536)):
                    return
                buf += got
            conn.sendall(CASES[buf.split(b" ")[1].decode()][0])
            stop.wait(3.0)

    with loopback(serve, threaded=True) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    checks = summary["root_group"]["checks"]
    assert len(checks) == len(CASES), checks
    assert {name for name, c in checks.items() if c["fails"]} == set(), checks
