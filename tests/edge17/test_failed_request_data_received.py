"""A request that fails after its answer began (a body cut short, a garbled status line, a head
cut mid-line) counts the bytes it read in ``data_received``, and what it wrote in ``data_sent``,
as k6 counts them: k6 measures both on the connection, whatever became of the request.

Found side by side with k6 1.1.0 on loopback: k6 counted 43, 25 and 27 bytes received for the
three answers below (each a failed request, status 0), the fast client 0 for each: its failure
path built the response with no byte counts at all.
"""

from __future__ import annotations

from pathlib import Path

from k6_side import needs_k6, run_k6
from raw_http import answer_raw, loopback

from simulator.http import Request, make_transport

ANSWERS = {
    "/partial": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",  # body cut: 'truncated'
    "/garbled": b"XYZZY not http at all\r\n\r\n",  # 'bad-response'
    "/head": b"HTTP/1.1 200 OK\r\nContent-Le",  # head cut mid-line
}


async def test_a_failed_request_counts_the_bytes_it_read_and_wrote() -> None:
    with loopback(answer_raw(ANSWERS, half_close=True), threaded=True) as url:
        transport = make_transport(url, 5.0, "fast")
        try:
            for path, answer in ANSWERS.items():
                req = Request("GET", path)
                resp = await transport.send(req)
                assert resp.status == 0 and resp.error is not None, (path, resp)
                assert (resp.received, resp.sent) == (len(answer), req.written), (path, resp)
                assert req.written > 0
        finally:
            await transport.close()


@needs_k6
def test_k6_counts_the_same_bytes_received(tmp_path: Path) -> None:
    """k6 1.1.0 on the same answers: every request failed, every byte read counted."""
    script = (
        "import http from 'k6/http';\n"
        "export const options = { iterations: 1, vus: 1 };\n"
        "export default function () {\n"
        + "".join(f"  http.get('URL{p}');\n" for p in ANSWERS)
        + "}\n"
    )
    with loopback(answer_raw(ANSWERS, half_close=True), threaded=True) as url:
        _, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    metrics = summary["metrics"]
    assert metrics["http_req_failed"]["passes"] == len(ANSWERS)
    assert metrics["data_received"]["count"] == sum(map(len, ANSWERS.values()))
