"""Flash, then run, as one story: the real esptool writes a test ESP image and the LittleFS (the
firmware app + /scfw_config.json) into an emulated board in download mode; the board resets into
the app and joins a mixed ``scfleet run`` over socket:// against the embedded reference server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hw_bridge import flash, fsimage, images
from hw_bridge.appmode import FirmwareAppRunner, firmware_files
from hw_bridge.emulator.server import start_emulated_boards
from hw_bridge.testing import wait_until
from simulator.report.summary import figures

pytestmark = pytest.mark.slow

FAST = flash.Tuning(
    timeout=1.0, connect_attempts=2, erase_write_timeout_per_mb=1.0, md5_timeout_per_mb=1.0
)
DEVICE = "esp32-flashed-001"
SCENARIO = """
[scenarios.iot_upload]
executor = "constant-arrival-rate"
rate = 4
time_unit = "1s"
duration = "3s"
pre_allocated_devices = 2
max_devices = 4
graceful_stop = "3s"

[scenarios.iot_upload.device]
kind = "iot_upload"
endpoint = "/api/esp32/audio/upload"
chunk_bytes = 32000
sample_rate = 16000

[boards]
ports = ["{url}"]
registry = "boards.toml"
scenario = "iot_upload"
"""


def test_a_flashed_emulated_board_boots_and_joins_a_mixed_run(
    tmp_path: Path, scfleet: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    with start_emulated_boards(1, boot_mode="download") as boards:
        h = boards[0]
        h.call(lambda b: setattr(b, "app_runner", FirmwareAppRunner(b)))
        assert h.board.mode == "download"
        job = flash.FlashJob(
            port=h.url,
            index=1,
            firmware=flash.Image(0, images.make_test_image(200_000), "micropython.bin"),
            app_files=firmware_files(),
            config=flash.BoardConfig("esp32-flashed-{n:03d}", "http://127.0.0.1:9/"),
            baud=460800,
        )
        [r] = flash.flash_boards([job], tuning=FAST, display="none")
        assert r.ok and r.verified, r.error
        # socket:// end = hard reset: wait for the boot into the app
        wait_until(lambda: h.board.mode == "app" and h.board.boots >= 1, 10, lambda: h.board.events)
        files = fsimage.read_image(h.call(lambda b: bytes(b.flash[0x200000:])))
        assert json.loads(files["/scfw_config.json"])["device_id"] == DEVICE
        assert files["/scfw/app.py"] == firmware_files()["/scfw/app.py"]

        (tmp_path / "boards.toml").write_text(
            f'[[board]]\nport = "{h.url}"\ndevice_id = "{DEVICE}"\n'
        )
        scenario = tmp_path / "flashed.toml"
        scenario.write_text(SCENARIO.replace("{url}", h.url))
        out = tmp_path / "run"
        res = scfleet("run", str(scenario), "--out", str(out), "--quiet", timeout=60)
        assert res.returncode == 0, res.stderr + res.stdout

    db = sqlite3.connect(out / "server" / "ledger.sqlite")
    rows = db.execute(
        "SELECT device_id, sequence, bytes, sample_rate, content_type FROM uploads"
    ).fetchall()
    mine = [row for row in rows if row[0] == DEVICE]
    assert len(mine) >= 3, rows  # 2 uploads/s (4/s over 2 devices) for 3 s
    assert sorted(row[1] for row in mine) == list(range(len(mine)))
    assert {row[2:] for row in mine} == {(32000, 16000, "application/octet-stream")}
    assert [row for row in rows if row[0] != DEVICE]  # the virtual devices ran too
    summary = json.loads((out / "summary.json").read_text())
    m = {k: figures(summary, k) for k in {*summary["metrics"], *summary["scfleet"]["metrics"]}}
    assert int(m["http_reqs{kind:physical}"]["count"]) == len(mine)
    assert m["http_req_failed{kind:physical}"]["value"] == 0
    assert "{ kind:physical }" in (out / "summary.txt").read_text()
