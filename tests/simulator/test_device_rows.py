"""devices.csv carries every column of the typed device row, a board's included.

Before issue 9, output.py wrote the file with a hard-coded column list and
``extrasaction="ignore"``: a board's port, state, lost/rejoined counts, dropped chunks, clock
offset, ping RTT, bad lines and protocol errors were silently dropped.
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

from simulator.config import parse_config
from simulator.http import FakeTransport
from simulator.report.output import write_run
from simulator.run.device_row import VIRTUAL_COLUMNS, DeviceRow
from simulator.run.runner import Environment, build_bank

BOARD = DeviceRow(
    scenario="up",
    kind="physical",
    device_id="esp32-board-1",
    requests=5,
    ok=4,
    failed=1,
    next_sequence=6,
    bytes_ok=128,
    logins=0,
    board="socket://127.0.0.1:1",
    state="finished",
    lost=1,
    rejoined=1,
    dropped_chunks=3,
    clock_offset_us=-250,
    ping_rtt_us=900,
    bad_lines=2,
    protocol_errors=1,
)


class OneBoard:
    async def prepare(self, env: Environment) -> None:
        pass

    async def run(self, env: Environment, start: float) -> None:
        pass

    async def close(self) -> None:
        pass

    def device_rows(self) -> list[DeviceRow]:
        return [BOARD]


def _run(tmp_path: Path, with_board: bool) -> list[dict[str, str]]:
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 10,
                    "duration": "0.3s",
                    "pre_allocated_devices": 2,
                    "device": {"kind": "iot_upload", "chunk_bytes": 64},
                }
            }
        }
    )
    env = Environment(cfg, FakeTransport(keep=False), bank=build_bank(cfg), tick=0.1)
    if with_board:
        env.companions.append(OneBoard())
    result = asyncio.run(env.run())
    write_run(result, tmp_path / "run", {})
    with open(tmp_path / "run" / "devices.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames is not None
        header = tuple(reader.fieldnames)
        rows = list(reader)
    if not with_board:
        assert header == VIRTUAL_COLUMNS  # a virtual-only run's file is as it was
    return rows


def test_board_columns_reach_devices_csv(tmp_path: Path) -> None:
    rows = _run(tmp_path, with_board=True)
    board = next(r for r in rows if r["kind"] == "physical")
    assert board["board"] == "socket://127.0.0.1:1"
    assert board["state"] == "finished"
    assert (board["lost"], board["rejoined"], board["dropped_chunks"]) == ("1", "1", "3")
    assert (board["clock_offset_us"], board["ping_rtt_us"]) == ("-250", "900")
    assert (board["bad_lines"], board["protocol_errors"]) == ("2", "1")
    virtual = [r for r in rows if r["kind"] != "physical"]
    assert virtual and all(r["board"] == "" and r["dropped_chunks"] == "" for r in virtual)


def test_virtual_only_devices_csv_keeps_its_columns(tmp_path: Path) -> None:
    rows = _run(tmp_path, with_board=False)
    assert rows and all(int(r["requests"]) >= 0 for r in rows)
