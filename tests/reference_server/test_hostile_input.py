"""Hostile requests against the real server process: each is a 400/413 with one log line, never
a 500, a traceback or the request's bytes in the log."""

from __future__ import annotations

import signal
import socket
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ANALYZE = "/api/lightweight-analyze"
LOGIN = "/api/auth/login"
MARK = b"ZQXJ"  # appears in every attack's payload; must never reach the log


def _multipart(extra_header: bytes) -> tuple[bytes, bytes]:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
        + extra_header
        + b"\r\n\r\nRIFF....\r\n--XyZ--\r\n"
    )
    return b"multipart/form-data; boundary=XyZ", body


def _nested_json() -> tuple[bytes, bytes]:
    depth = 30_000  # within the 64 KiB login limit, beyond the decoder's recursion limit
    return b"application/json", b"[" * depth + b'"' + MARK + b'"' + b"]" * depth


ATTACKS = {
    "analyze-nul-in-part-header": (ANALYZE, _multipart(b"X-A: " + MARK + b"\x00b")),
    "analyze-long-part-header": (ANALYZE, _multipart(b"X-A: " + MARK * 2100)),
    "login-long-part-header": (LOGIN, _multipart(b"X-A: " + MARK * 2100)),
    "login-nul-in-part-header": (LOGIN, _multipart(b"X-A: " + MARK + b"\x00b")),
    "login-deeply-nested-json": (LOGIN, _nested_json()),
}


def _send(url: str, path: str, content_type: bytes, body: bytes, method: str = "POST") -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = (
        (
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nContent-Type: "
        ).encode()
        + content_type
        + b"\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, spawn_server_module: Any) -> Any:
    """One real server; every attack sent once; then SIGTERM: the answers and its stderr."""
    answers = {}
    data = tmp_path_factory.mktemp("hostile")
    with spawn_server_module(data, "--analysis-workers", "1") as srv:
        for name, (path, (ctype, body)) in ATTACKS.items():
            answers[name] = _send(srv.url, path, ctype, body)
        health = _send(srv.url, "/health", b"text/plain", b"", "GET")
        code, _, err = srv.stop(signal.SIGTERM)
    return answers, health, code, err


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_a_400_with_one_log_line(hostile_run: Any, attack: str) -> None:
    answers, _, _, err = hostile_run
    assert answers[attack].startswith(b"HTTP/1.1 400 "), answers[attack][:200]
    path = ATTACKS[attack][0]
    assert sum(f" 400 POST {path}: " in line for line in err.splitlines()) >= 1, err


def test_server_log_has_no_traceback_and_no_request_bytes(hostile_run: Any) -> None:
    _, health, code, err = hostile_run
    assert code == 0 and health.startswith(b"HTTP/1.1 200 ")  # still serving after them
    assert "Traceback" not in err
    assert MARK.decode() not in err  # the attacker's bytes never reach the log
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == len(ATTACKS), err  # one line each
