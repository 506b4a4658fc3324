"""A second run against a server that kept its ledger: every upload is answered as a retry.

Virtual devices number their uploads from 0 in every run, and the reference server
de-duplicates (device, sequence): run against one ``scfleet serve --data-dir`` twice, the
second run's uploads are all answered 200 ``"duplicate": true`` and none is stored, while
its summary counted them as delivered (5 ok in devices.csv, 0 new ledger rows) and said
nothing. A board's such answers were already named in a note (hw_bridge); a virtual
device's now are too, built-in or written on the Python device API.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from tests.support.small_run import SMALL_UPLOAD

pytestmark = pytest.mark.slow  # two runs of a second against a real server


def _rows(ledger: Path) -> int:
    with sqlite3.connect(ledger) as db:
        return int(db.execute("SELECT count(*) FROM uploads").fetchone()[0])


def _ok(run: Path) -> int:
    with open(run / "devices.csv") as fh:
        return sum(int(r["ok"]) for r in csv.DictReader(fh))


@pytest.mark.parametrize(
    ("kind", "workers"),
    [
        ("iot_upload", "1"),
        ("iot_upload", "2"),
        ("python:simulator.builtin_devices:IotUpload", "1"),  # the Python device API's path
    ],
)
def test_a_rerun_against_a_kept_ledger_says_nothing_was_stored(
    tmp_path: Path,
    scfleet: Callable[..., CompletedProcess[str]],
    reference_server: Callable[[Path], Any],
    kind: str,
    workers: str,
) -> None:
    server = reference_server(tmp_path / "srv")
    cfg = tmp_path / "up.toml"
    cfg.write_text(SMALL_UPLOAD.replace('"iot_upload"', f'"{kind}"'))
    ledger = tmp_path / "srv" / "ledger.sqlite"
    runs = []
    for name in ("first", "second"):
        out = tmp_path / name
        done = scfleet(
            "run", str(cfg), "--target", server.url, "--out", str(out), "--quiet",
            "--workers", workers,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        runs.append((out, done, _rows(ledger)))
    (first, done1, rows1), (second, done2, rows2) = runs
    # a loaded machine may drop an iteration of either run (so not always 5 each): the
    # second run's uploads that the ledger did not get are the duplicates
    assert _ok(first) == rows1 > 0
    stale = _ok(second) - (rows2 - rows1)
    assert stale > 0  # counted as delivered, nothing stored
    notes = json.loads((second / "summary.json").read_text())["scfleet"]["notes"]
    said = [n for n in notes if "duplicate" in n]
    assert said, notes
    assert sum(int(n.split("answered ")[1].split(" ")[0]) for n in said) == stale, said
    assert "scenario up" in said[0] and "stored none" in said[0], said
    assert said[0] in done2.stdout
    first_notes = json.loads((first / "summary.json").read_text())["scfleet"]["notes"]
    assert not [n for n in first_notes if "duplicate" in n], first_notes
