"""A board killed mid-run: the run goes on, the board is reported lost, and rejoins on reboot.

The test owns the emulated boards (socket:// on 127.0.0.1), names them in a registry file like
real boards, and powers one off and on again while ``scfleet run`` drives them.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys
import time

import pytest

from hw_bridge.appmode import start_app_boards
from simulator.report.summary import figures

pytestmark = pytest.mark.slow  # starts emulated boards and servers for seconds

ROOT = pathlib.Path(__file__).resolve().parents[2]


def uploads(db_path: pathlib.Path, device: str) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=1) as db:
            return int(
                db.execute("SELECT count(*) FROM uploads WHERE device_id=?", (device,)).fetchone()[
                    0
                ]
            )
    except sqlite3.Error:
        return 0


def wait(pred: object, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_board_killed_mid_run_is_lost_and_rejoins(tmp_path: pathlib.Path) -> None:
    boards = start_app_boards(2, name_prefix="bench")
    try:
        (tmp_path / "boards.toml").write_text(
            "".join(
                f'[[board]]\nport = "{h.url}"\ndevice_id = "esp32-bench-{i}"\n'
                for i, h in enumerate(boards, start=1)
            )
        )
        cfg = tmp_path / "lost.toml"
        cfg.write_text(
            """
[scenarios.iot_upload]
executor = "constant-arrival-rate"
rate = 4
duration = "7s"
pre_allocated_devices = 2
graceful_stop = "2s"

[boards]
registry = "boards.toml"      # no ports: every board in the registry
rate = 4
silence = "0.5s"
status_timeout = "0.4s"
"""
        )
        out = tmp_path / "run"
        proc = subprocess.Popen(
            [sys.executable, "-m", "scfleet", "run", str(cfg), "--out", str(out), "--quiet"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ledger = out / "server" / "ledger.sqlite"
            wait(lambda: uploads(ledger, "esp32-bench-2") >= 3, 20)
            mute, dead = boards
            # bench-1 goes mute (a stuck USB link): it keeps uploading, but says nothing
            mute.call(lambda b: setattr(b, "tx_nowait", lambda data: None))
            dead.call(lambda b: b.power_off())  # bench-2 loses power
            before = uploads(ledger, "esp32-bench-2")
            time.sleep(2.0)
            assert uploads(ledger, "esp32-bench-2") <= before + 1  # nothing new while off
            mute.call(lambda b: delattr(b, "tx_nowait"))
            dead.call(lambda b: b.power_on())  # boots the app again from its flash
            stdout, stderr = proc.communicate(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, stderr + stdout
    finally:
        boards.stop()

    summary = json.loads((out / "summary.json").read_text())
    m = {k: figures(summary, k) for k in {*summary["metrics"], *summary["scfleet"]["metrics"]}}
    assert m["boards_lost"]["count"] == 2
    assert m["boards_rejoined"]["count"] == 2
    notes = summary["scfleet"]["notes"]
    assert any("(esp32-bench-1) lost at" in n and "no answer to status" in n for n in notes), notes
    assert any("(esp32-bench-2) lost at" in n for n in notes), notes
    assert any("(esp32-bench-1) rejoined at" in n for n in notes), notes
    assert any("(esp32-bench-2) rejoined at" in n for n in notes), notes
    assert "lost at" in stdout  # the summary printed at the end says so too
    # the run went on: the mute board and the virtual devices kept uploading throughout
    assert uploads(out / "server" / "ledger.sqlite", "esp32-bench-1") >= 24
    after = uploads(out / "server" / "ledger.sqlite", "esp32-bench-2")
    assert after > before + 2  # it uploaded again after rejoining
    assert m["http_reqs{kind:virtual}"]["count"] >= 24
