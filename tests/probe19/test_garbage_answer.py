"""An answer that cannot be an HTTP response fails the request as soon as its first line
says so, as Go's net/http (so k6) fails it, not at the request timeout.

Found by hand (probe19): a target answering random bytes on a connection it keeps open had
every request time out (the default timeout is 60 s) as 'timeout': the fast client waited for
a blank line ending a head that was never coming. k6 1.1 fails it at once: 'malformed HTTP
response' (error_code 1000).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from k6_side import needs_k6, run_k6
from raw_http import answer_raw, loopback, send_to_raw

from simulator.http import Request
from simulator.http.errors import ErrorKind

GARBAGE = b"\x16\x03\x01 garbage, no HTTP here\r\nmore of it\r\n"  # no blank line ever
BAD_STATUS = b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n"  # the head not yet ended
NO_CODE = b"HTTP/1.1\r\nContent-Length: 2\r\n"
SLOW_OK = b"HTTP/1.1 200 OK\r\nContent-Le"  # a good start, the rest held back


@pytest.mark.parametrize("transport_kind", ["fast", "aiohttp"])
@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (GARBAGE, ErrorKind.BAD_RESPONSE),
        (BAD_STATUS, ErrorKind.BAD_RESPONSE),
        (NO_CODE, ErrorKind.BAD_RESPONSE),
        (b"H", ErrorKind.TIMEOUT),  # may still become a status line
        (SLOW_OK, ErrorKind.TIMEOUT),
    ],
    ids=["garbage", "bad-status", "no-code", "one-byte", "slow-ok"],
)
async def test_a_head_that_cannot_be_a_response_fails_at_once(
    data: bytes, kind: ErrorKind, transport_kind: str
) -> None:
    request = Request("POST", "/x", body=b"data")
    resp, took = await send_to_raw(data, request, kind=transport_kind, hold=3.0)
    assert (resp.status, resp.kind) == (0, kind), resp.error
    if kind is ErrorKind.BAD_RESPONSE:
        assert took < 0.9, took  # at once, not at the 1 s timeout


@needs_k6
def test_k6_fails_them_at_once(tmp_path: Path) -> None:
    answers = {"/garbage": GARBAGE, "/bad": BAD_STATUS, "/nocode": NO_CODE}
    script = (
        "import http from 'k6/http';\n"
        "export const options = { iterations: 1, vus: 1 };\n"
        "export default function () {\n"
        "  for (const p of ['/garbage', '/bad', '/nocode']) {\n"
        "    const t0 = Date.now();\n"
        "    const r = http.post('URL' + p, 'data', { timeout: '5s' });\n"
        "    if (r.status !== 0 || r.error_code !== 1000 || Date.now() - t0 > 2000)\n"
        "      throw new Error(p + ' ' + r.status + ' ' + r.error_code + ' ' + r.error);\n"
        "  }\n"
        "  http.get('URL/garbage', { tags: { name: 'done' }, timeout: '5s' });\n"
        "}\n"
    )

    with loopback(answer_raw(answers, hold=6.0), threaded=True) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    assert summary["metrics"]["http_reqs"]["count"] == 4, summary["metrics"]
