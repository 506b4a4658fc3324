"""A board whose first attempts the server answers as duplicates is named in the summary.

A board numbers its uploads from 0 after every boot. Run twice against one server (its ledger
kept), a board power-cycled between the runs re-sends the sequences of the first: the server
answers each as a retry (200, ``"duplicate": true``) and stores nothing, and the board counts
it delivered. A duplicate answer to a *first* attempt cannot be a retry whose answer was lost,
so it is this: audio the server did not store. Before, the second run counted 10 of 10 board
uploads ok, the ledger had none of them, and nothing said so.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from hw_bridge.appmode import start_app_boards
from scfleet import api

pytestmark = pytest.mark.slow
DEVICE = "esp32-stale-1"
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


def _board_run(tmp_path: pathlib.Path, url: str, name: str) -> dict[str, Any]:
    boards = start_app_boards(1, name_prefix=name)  # a fresh boot: numbers from 0
    try:
        (tmp_path / "boards.toml").write_text(
            f'[[board]]\nport = "{boards[0].url}"\ndevice_id = "{DEVICE}"\n'
        )
        cfg = tmp_path / "stale.toml"
        cfg.write_text(CFG)
        outcome = api.run(api.load(cfg, target=url), out=tmp_path / name, workers=1)
        assert outcome.exit_code == 0, outcome.result.error
    finally:
        boards.stop()
    summary: dict[str, Any] = json.loads((tmp_path / name / "summary.json").read_text())
    return summary


@pytest.mark.timeout(180)
def test_first_attempts_answered_as_duplicates_are_named(
    tmp_path: pathlib.Path, reference_server: Callable[..., Any]
) -> None:
    server = reference_server(tmp_path / "srv")
    first = _board_run(tmp_path, server.url, "one")
    assert not [n for n in first["scfleet"]["notes"] if "already held" in n]
    second = _board_run(tmp_path, server.url, "two")
    with sqlite3.connect(tmp_path / "srv" / "ledger.sqlite") as db:
        (rows,) = db.execute("SELECT count(*) FROM uploads WHERE device_id=?", (DEVICE,)).fetchone()
    notes = [n for n in second["scfleet"]["notes"] if "already held" in n]
    boards = [n for n in notes if n.startswith("board ")]
    assert len(boards) == 1 and DEVICE in boards[0], second["scfleet"]["notes"]
    # the scenario's virtual devices re-sent their sequences too, and are named on their own
    # (d246f66); the board's uploads are not counted in it
    virtual = [n for n in notes if n.startswith("scenario iot_upload:")]
    assert len(virtual) == 1 and DEVICE not in virtual[0], second["scfleet"]["notes"]
    assert rows == 10  # the first run's 10; the second's were not stored
