"""A board whose sequences the server holds with other audio: 409s, named, never retried.

The board (the firmware app on an emulated port) numbers its uploads from 0; the server
already holds its sequences 0-2 with other audio (an earlier life of the board with another
sound). Before, each was answered 200 ``"duplicate": true``: the board counted them
delivered, the ledger kept the old audio, and the summary called them re-sends. Now each is a
409 the board sends once and drops, recorded with ``error`` ``sequence-conflict`` and named in
a note on the board.
"""

from __future__ import annotations

import csv
import json
import pathlib
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from hw_bridge.appmode import start_app_boards
from reference_server import UPLOAD_PATH
from scfleet import api

pytestmark = pytest.mark.slow
DEVICE = "esp32-conflict-1"
CFG = """
[scenarios.iot_upload]
executor = "constant-arrival-rate"
rate = 1
duration = "2s"
pre_allocated_devices = 1
graceful_stop = "2s"
[scenarios.iot_upload.device]
chunk_bytes = 3200
[boards]
registry = "boards.toml"
rate = 5
"""
HELD = 3  # sequences 0..2 of the board, held with other audio


@pytest.mark.timeout(180)
def test_a_boards_conflicts_are_named_and_not_retried(
    tmp_path: pathlib.Path, reference_server: Callable[..., Any]
) -> None:
    server = reference_server(tmp_path / "srv")
    for seq in range(HELD):
        req = urllib.request.Request(
            server.url + UPLOAD_PATH,
            data=b"\x11\x00" * 1600,
            headers={
                "Content-Type": "application/octet-stream",
                "X-Device-ID": DEVICE,
                "X-Sample-Rate": "16000",
                "X-Sequence": str(seq),
            },
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
    boards = start_app_boards(1, name_prefix="conflict")  # a fresh boot: numbers from 0
    try:
        (tmp_path / "boards.toml").write_text(
            f'[[board]]\nport = "{boards[0].url}"\ndevice_id = "{DEVICE}"\n'
        )
        cfg = tmp_path / "conflict.toml"
        cfg.write_text(CFG)
        outcome = api.run(api.load(cfg, target=server.url), out=tmp_path / "run", workers=1)
        assert outcome.exit_code == 0, outcome.result.error
    finally:
        boards.stop()
    summary: dict[str, Any] = json.loads((tmp_path / "run" / "summary.json").read_text())
    notes = summary["scfleet"]["notes"]
    named = [n for n in notes if n.startswith("board ") and "sequence conflicts" in n]
    assert len(named) == 1 and DEVICE in named[0], notes
    assert f"refused {HELD} of its uploads" in named[0], named
    assert not [n for n in notes if "count as delivered" in n], notes  # none called a re-send
    failures = summary["scfleet"]["failures"]
    assert {"status": 409, "error": "sequence-conflict", "error_code": 1409, "count": HELD} in (
        failures
    ), failures
    with open(tmp_path / "run" / "devices.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["device_id"] == DEVICE]
    assert len(rows) == 1 and int(rows[0]["failed"]) == HELD, rows  # each sent once: no retry
