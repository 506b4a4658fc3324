"""A response whose Content-Length is not one plain number is a bad response, as Go's net/http
(so k6) and aiohttp read it — never an upload counted ok.

Found with a loopback server answering ``Content-Length: 2`` and ``Content-Length: 5`` on one
response: the fast client took the first and counted 5 of 5 uploads ok (aiohttp: 5 of 5
bad-response; Go: "message cannot contain multiple Content-Length headers"). Python's ``int``
also read ``1_0`` as 10 and ``+2`` as 2, which Go's ``ParseUint`` refuses.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from raw_http import loopback, read_request

from scfleet import api

SCENARIO = """
[target]
timeout = "5s"
transport = "{transport}"
[scenarios.up]
executor = "per-vu-iterations"
vus = 1
iterations = 4
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 1600
"""


def _answer(lengths: list[bytes], body: bytes) -> Callable[[socket.socket, threading.Event], None]:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"Content-Length: " + v + b"\r\n" for v in lengths)

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        buf = b""
        with conn:
            while not stop.is_set():
                rest = read_request(conn, buf)
                if rest is None:
                    return
                buf = rest
                conn.sendall(head + b"\r\n" + body)

    return serve


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
@pytest.mark.parametrize(
    ("lengths", "body"),
    [
        ([b"2", b"5"], b"ok"),  # two that disagree
        ([b"1_0"], b"okokokokok"),  # int() reads 10
        ([b"+2"], b"ok"),  # int() reads 2
    ],
    ids=["two", "underscore", "plus"],
)
@pytest.mark.timeout(120)
def test_a_content_length_that_is_not_one_number_fails_the_request(
    tmp_path: Path, transport: str, lengths: list[bytes], body: bytes
) -> None:
    (tmp_path / "up.toml").write_text(SCENARIO.format(transport=transport))
    with loopback(_answer(lengths, body), threaded=True) as url:
        outcome = api.run(api.load(tmp_path / "up.toml"), target=url, out=tmp_path / "r", workers=1)
    assert outcome.folder is not None
    metrics = outcome.folder.summary["metrics"]
    assert (metrics["http_req_failed"]["passes"], metrics["http_reqs"]["count"]) == (4, 4)
    assert "bad-response" in (tmp_path / "r" / "summary.txt").read_text()
