"""A response head whose last header line ends in a bare LF and whose blank line is a CRLF
(``...Content-Length: 2\\n\\r\\nok``) ends there, as Go's net/http (so k6) and aiohttp read it:
a blank line is an empty line whatever ended the line before it.

Found by the last session's review of the mixed line endings (fd3545d): the fast client looked
for the head's end as "\\r\\n\\r\\n" or "\\n\\n" only, so this head never ended: on a connection
held open the request timed out, and where a "\\r\\n\\r\\n" came later (in the body, or a
chunked body's last chunk) the head was cut there, body bytes and all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from k6_side import needs_k6, run_k6
from raw_http import answer_each, loopback, send_to_raw

from simulator.http import Request

ANSWERS = {
    "/plain": b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok",
    "/lf-status": b"HTTP/1.1 200 OK\nContent-Length: 2\n\r\nok",
    # a "\r\n\r\n" later on: in the body, and a chunked body's end
    "/crlfcrlf-in-body": b"HTTP/1.1 200 OK\r\nContent-Length: 6\n\r\n\r\n\r\nok",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\n\r\n2\r\nok\r\n0\r\n\r\n",
    # the bare-LF line first, CRLF lines after it: the blank line still ends the head
    "/lf-then-crlf": b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok",
}
BODIES = {"/crlfcrlf-in-body": b"\r\n\r\nok"}


@pytest.mark.parametrize("kind", ["fast", "aiohttp"])
@pytest.mark.parametrize("path", sorted(ANSWERS))
async def test_a_crlf_blank_line_after_a_bare_lf_line_ends_the_head(kind: str, path: str) -> None:
    """The connection is held open: framing, not the close, must end the answer."""
    resp, _ = await send_to_raw(ANSWERS[path], Request("GET", path), kind=kind, hold=3.0)
    assert (resp.status, resp.error, resp.body) == (200, None, BODIES.get(path, b"ok"))


@pytest.mark.slow
@needs_k6
def test_k6_reads_them_so(tmp_path: Path) -> None:
    """k6 1.1.0 side by side, on a kept-alive connection never closed first."""
    script = (
        "import http from 'k6/http';\n"
        "export const options = { iterations: 1, vus: 1 };\n"
        "export default function () {\n"
        f"  for (const p of {sorted(ANSWERS)!r}) {{\n"
        "    const r = http.get('URL' + p, { timeout: '3s' });\n"
        "    const want = p === '/crlfcrlf-in-body' ? '\\r\\n\\r\\nok' : 'ok';\n"
        "    if (r.status !== 200 || r.body !== want) throw new Error(p + ' ' + r.status);\n"
        "  }\n"
        "  http.get('URL/plain', { tags: { name: 'done' } });\n"
        "}\n"
    )

    with loopback(answer_each(ANSWERS), threaded=True) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    metrics = summary["metrics"]
    assert metrics["http_reqs"]["count"] == len(ANSWERS) + 1, metrics  # no throw
    assert metrics["http_req_failed"]["passes"] == 0, metrics
    assert metrics["http_req_duration"]["max"] < 1000, metrics  # framed, not read to a close
