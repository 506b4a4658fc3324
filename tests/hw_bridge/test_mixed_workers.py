"""Boards and workers in one run (issue 12): the virtual devices run in two worker processes,
the emulated boards stay attached to the coordinator, and the reference server's ledger holds
every device ID and sequence exactly once — the merged summary's counts equal it."""

from __future__ import annotations

import csv
import json
import sqlite3
from typing import Any

import pytest

from simulator.report.summary import figures

pytestmark = pytest.mark.slow


def test_boards_with_two_workers_leave_every_device_and_sequence_once(
    fleet: Any, emulated_boards: Any
) -> None:
    run = fleet.run(
        "configs/mixed_fleet.toml",
        time_scale=0.2,  # 20 s -> 4 s
        boards=emulated_boards(3, scenario="iot_upload", rate=2),
        overrides=["run.workers=2"],
    )
    run.assert_ok()
    out = run.run_dir
    assert json.loads((out / "config.json").read_text())["workers"] == 2

    db = sqlite3.connect(out / "server" / "ledger.sqlite")
    rows = db.execute("SELECT device_id, sequence FROM uploads").fetchall()
    assert len(rows) == len(set(rows))  # no (device, sequence) twice
    by_dev: dict[str, list[int]] = {}
    for dev, seq in rows:
        by_dev.setdefault(dev, []).append(seq)
    for dev, seqs in by_dev.items():  # none missing: 0 … n−1 for every device
        assert sorted(seqs) == list(range(len(seqs))), dev

    with open(out / "devices.csv") as fh:
        devices = list(csv.DictReader(fh))
    ids = [d["device_id"] for d in devices]
    assert len(ids) == len(set(ids))  # each device in one place: one worker or the boards
    boards = {d["device_id"] for d in devices if d["kind"] == "physical"}
    virtual = {d["device_id"] for d in devices if d["kind"] == "virtual"}
    assert len(boards) == 3 and len(virtual) >= 2
    assert set(by_dev) <= boards | virtual and boards <= set(by_dev)
    for d in devices:  # every device's row agrees with what the server kept from it
        assert int(d["ok"]) == len(by_dev.get(d["device_id"], [])), d

    summary = json.loads((out / "summary.json").read_text())
    m = {k: figures(summary, k) for k in {*summary["metrics"], *summary["scfleet"]["metrics"]}}
    assert int(m["http_reqs"]["count"]) == len(rows)
    assert int(m["http_reqs{kind:physical}"]["count"]) == sum(len(by_dev[b]) for b in boards)
    assert int(m["http_reqs{kind:virtual}"]["count"]) == sum(
        len(by_dev.get(v, [])) for v in virtual
    )
    # 10/s for 4 s, over two workers: 40 arrivals, started or (a loaded machine's loop reaching
    # them late) dropped and counted. dropped_iterations also holds the boards' dropped chunks
    # (one metric, tagged by scenario only), so it bounds the virtual devices' share from above
    started = int(m["http_reqs{kind:virtual}"]["count"])
    dropped = int(m["dropped_iterations"]["count"]) if "dropped_iterations" in m else 0
    assert started <= 40 <= started + dropped, (started, dropped)
