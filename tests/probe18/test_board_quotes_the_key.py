"""``scfleet hw provision`` to a board that refuses the config by quoting the line it got
(foreign firmware, a bug): the Wi-Fi key is not in scfleet's error. Before, the one-line error
was ``board refused the config (bad_value: refused line {... "wifi_key":"<the key>"})``: the
key on stderr, which the project never allows (README: secrets never in logs or errors).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from scfleet import cli

KEY = 'W1fi-s3cret "é"'


def _serve(conn: socket.socket) -> None:
    with conn, conn.makefile("rwb") as f:
        for line in f:
            msg = json.loads(line)
            t, mid = msg.get("t"), msg.get("id")
            if t == "hello":
                reply = {"t": "hello", "id": mid, "proto": 1, "fw": "0.1.0", "v": 1}
            elif t == "config":
                text = line.decode().strip()
                reply = {"t": "error", "id": mid, "code": "bad_value", "msg": f"refused {text}"}
            else:
                reply = {"t": "ok", "id": mid, "cmd": t, "v": 1}
            f.write(json.dumps(reply).encode() + b"\n")
            f.flush()


@pytest.fixture
def quoting_board() -> Iterator[str]:
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)

    def accept() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        _serve(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        srv.close()
        thread.join(5)


def test_a_refusal_quoting_the_config_line_does_not_show_the_key(
    quoting_board: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROBE18_WIFI_KEY", KEY)
    code = cli.main(
        [
            "hw",
            "provision",
            quoting_board,
            "--target",
            "http://127.0.0.1:8080",
            "--device-id",
            "d1",
            "--wifi-ssid",
            "lab",
            "--wifi-key-env",
            "PROBE18_WIFI_KEY",
            "--timeout",
            "5",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "board refused the config" in err and "wifi_key" in err  # the board's own words
    escaped = json.dumps(KEY)[1:-1]
    for text in (out, err):
        assert KEY not in text and escaped not in text and "W1fi-s3cret" not in text, err
