"""Three response heads the fast client reads as Go's net/http (so k6 1.1.0) reads them,
checked side by side with k6 on loopback:

* ``Content-Length : 2`` (a space before the colon) is no Content-Length to Go (it keeps such a
  key, uncanonicalised): the body runs to the close, 200 "ok"; on a connection held open, a
  timeout. The fast client already read it so; held here.
* A Content-Length past Go's int64 (``strconv.ParseUint(cl, 10, 63)``) is a malformed answer
  (k6: 'bad Content-Length', error_code 1000). The fast client took the number, waited for a
  body that never came and failed it as 'truncated' (or, on a connection held open, a timeout).
* A ``101 Switching Protocols`` to a request that asked for no upgrade: k6 throws
  'unsupported response status: 101 Switching Protocols' at once. The fast client took 101 for
  an interim reply and waited for another: 'closed-before-answer', or on a connection held open
  (a server that did switch) the whole request timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from k6_side import needs_k6, run_k6
from raw_http import answer_raw, loopback, send_to_raw

from simulator.http import Request
from simulator.http.errors import ErrorKind

SPACE = b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"
HUGE = b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nok"  # 2**63
HUGE64 = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok"
ZEROS = b"HTTP/1.1 200 OK\r\nContent-Length: " + b"0" * 5000 + b"2\r\n\r\nok"  # Go: 2
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nok"
SWITCH_BARE = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "hold", "status", "kind", "body"),
    [
        (SPACE, 0.0, 200, None, b"ok"),
        (SPACE, 3.0, 0, ErrorKind.TIMEOUT, b""),
        (HUGE, 0.0, 0, ErrorKind.BAD_RESPONSE, b""),
        (HUGE, 3.0, 0, ErrorKind.BAD_RESPONSE, b""),
        (HUGE64, 0.0, 0, ErrorKind.BAD_RESPONSE, b""),
        (ZEROS, 3.0, 200, None, b"ok"),
        (SWITCH, 3.0, 0, ErrorKind.BAD_RESPONSE, b""),
        (SWITCH_BARE, 0.0, 0, ErrorKind.BAD_RESPONSE, b""),
    ],
    ids=[
        "space",
        "space-held",
        "2^63",
        "2^63-held",
        "past-2^64",
        "zeros",
        "101-held",
        "101-closed",
    ],
)
async def test_the_fast_client_reads_these_heads_as_go_does(
    data: bytes, hold: float, status: int, kind: ErrorKind | None, body: bytes
) -> None:
    resp, took = await send_to_raw(data, Request("POST", "/x", body=b"data"), hold=hold)
    assert (resp.status, resp.kind, resp.body) == (status, kind, body)
    assert resp.received == len(data)
    if kind is ErrorKind.BAD_RESPONSE:
        assert took < 0.9  # at once, not at the timeout


@pytest.mark.parametrize("hold", [0.0, 3.0], ids=["closed", "held"])
async def test_aiohttp_fails_a_101_at_once_too(hold: float) -> None:
    """aiohttp handed the 101 back as an answer (a failed request with status 101)."""
    request = Request("POST", "/x", body=b"data")
    resp, took = await send_to_raw(SWITCH, request, kind="aiohttp", hold=hold)
    assert (resp.status, resp.kind, took < 0.9) == (0, ErrorKind.BAD_RESPONSE, True)


async def test_the_largest_int64_content_length_is_a_length() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nok"
    resp, _ = await send_to_raw(data, Request("POST", "/x", body=b"data"))
    assert (resp.status, resp.kind) == (0, ErrorKind.TRUNCATED)  # k6: 'unexpected EOF'


@needs_k6
def test_k6_reads_them_so(tmp_path: Path) -> None:
    """k6 1.1.0: the space one 200 "ok", the long lengths failed (1000), the 101 thrown."""
    answers = {"/space": SPACE, "/huge": HUGE, "/huge64": HUGE64, "/switch": SWITCH}

    script = (
        "import http from 'k6/http';\n"
        "export const options = { iterations: 1, vus: 1 };\n"
        "export default function () {\n"
        "  const r = http.post('URL/space', 'data');\n"
        "  if (r.status !== 200 || r.body !== 'ok') throw new Error('space ' + r.status);\n"
        "  for (const p of ['/huge', '/huge64']) {\n"
        "    const h = http.post('URL' + p, 'data');\n"
        "    if (h.status !== 0 || h.error_code !== 1000 || !h.error.includes('bad Content-Length'))\n"
        "      throw new Error(p + ' ' + h.status + ' ' + h.error);\n"
        "  }\n"
        "  let threw = '';\n"
        "  try { http.post('URL/switch', 'data'); } catch (e) { threw = String(e); }\n"
        "  if (!threw.includes('unsupported response status: 101')) throw new Error('101 ' + threw);\n"
        "  http.get('URL/space', { tags: { name: 'done' } });\n"
        "}\n"
    )
    with loopback(answer_raw(answers), threaded=True) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    metrics = summary["metrics"]
    # the last request ran: every check above held (a throw would have ended the iteration)
    assert metrics["http_reqs"]["count"] == 4, metrics  # space, huge, huge64, done: no 101
    assert metrics["http_req_failed"]["passes"] == 2, metrics
