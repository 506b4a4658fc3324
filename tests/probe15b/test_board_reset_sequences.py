"""A board that resets mid-run and rejoins uploads new sequence numbers, so its audio is stored
and its counts equal the server's ledger.

Before, the firmware started ``X-Sequence`` at 0 after every boot and the rejoin's ``start``
said nothing of it: the rebooted board re-sent the sequences the server already held, the
server answered each as a retry (200, duplicate, nothing stored), the board reported them
delivered and the run counted them as uploads — more ``ok`` than the ledger has rows.
"""

from __future__ import annotations

import csv
import pathlib
import sqlite3
import subprocess
import sys
import time

import pytest

from hw_bridge.appmode import start_app_boards

pytestmark = pytest.mark.slow  # emulated boards and a run of seconds
ROOT = pathlib.Path(__file__).resolve().parents[2]
DEVICE = "esp32-reset-1"


def _rows(db_path: pathlib.Path) -> list[int]:
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(db_path, timeout=1) as db:
            got = db.execute("SELECT sequence FROM uploads WHERE device_id=?", (DEVICE,))
            return [int(r[0]) for r in got.fetchall()]
    except sqlite3.Error:
        return []


@pytest.mark.timeout(180)
def test_a_board_reset_mid_run_sends_new_sequences(tmp_path: pathlib.Path) -> None:
    boards = start_app_boards(1, name_prefix="reset")
    try:
        (board,) = boards
        (tmp_path / "boards.toml").write_text(
            f'[[board]]\nport = "{board.url}"\ndevice_id = "{DEVICE}"\n'
        )
        cfg = tmp_path / "reset.toml"
        cfg.write_text(
            '[scenarios.iot_upload]\nexecutor = "constant-arrival-rate"\nrate = 2\n'
            'duration = "9s"\npre_allocated_devices = 1\ngraceful_stop = "2s"\n'
            "[scenarios.iot_upload.device]\nchunk_bytes = 3200\n"
            '[boards]\nregistry = "boards.toml"\nrate = 5\nsilence = "0.5s"\n'
            'status_timeout = "0.4s"\n'
        )
        out = tmp_path / "run"
        proc = subprocess.Popen(
            [sys.executable, "-m", "scfleet", "run", str(cfg), "--out", str(out), "--quiet"]
            + ["--workers", "1"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ledger = out / "server" / "ledger.sqlite"
            deadline = time.monotonic() + 60
            while len(_rows(ledger)) < 8:
                assert time.monotonic() < deadline, "the board never uploaded"
                time.sleep(0.05)
            board.call(lambda b: b.power_off())
            time.sleep(1.0)
            board.call(lambda b: b.power_on())  # boots the app again from its flash
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, stderr + stdout
    finally:
        boards.stop()
    rows = _rows(out / "server" / "ledger.sqlite")
    with open(out / "devices.csv") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["device_id"] == DEVICE]
    assert "rejoined" in stdout
    assert max(rows) >= 20  # it uploaded after the reboot too
    assert int(row["ok"]) == len(rows), (row, sorted(rows))  # each delivery stored once
