"""A mixed run through the pytest plugin's ``fleet`` (``scfleet.api``, the path of ``scfleet
run``): virtual devices + 4 emulated boards running the firmware, against the embedded server; the ledger, the summary, and no Wi-Fi key anywhere."""

from __future__ import annotations

import csv
import json
import sqlite3
from typing import Any

import pytest

from simulator.report.summary import figures

pytestmark = pytest.mark.slow

KEY = "Wf-k3y-7c1e9-never-shown"


def test_mixed_fleet_config_runs_and_the_ledger_shows_every_board(
    fleet: Any,
    emulated_boards: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Through the pytest plugin's ``fleet`` (scfleet.api, as ``scfleet run`` does)."""
    monkeypatch.setenv("SCFLEET_TEST_WIFI_KEY", KEY)
    run = fleet.run(
        "configs/mixed_fleet.toml",
        time_scale=0.15,  # 20 s -> 3 s
        boards=emulated_boards(4, wifi_ssid="lab"),
        overrides=["boards.wifi_key_env=SCFLEET_TEST_WIFI_KEY"],
    )
    run.assert_ok()
    out = run.run_dir
    res = capfd.readouterr()

    db = sqlite3.connect(out / "server" / "ledger.sqlite")
    rows = db.execute(
        "SELECT device_id, sequence, bytes, sample_rate, content_type FROM uploads"
    ).fetchall()
    boards = {f"esp32-emu-00{i}" for i in range(1, 5)}  # from configs/boards.toml
    by_dev: dict[str, list[int]] = {}
    for dev, seq, nbytes, rate, ctype in rows:
        by_dev.setdefault(dev, []).append(seq)
        assert (nbytes, rate, ctype) == (32000, 16000, "application/octet-stream"), dev
    assert boards <= set(by_dev)
    for b in boards:  # 1 upload/s each for 3 s
        assert sorted(by_dev[b]) == list(range(len(by_dev[b]))) and len(by_dev[b]) >= 2, b
    virtual = set(by_dev) - boards
    assert virtual and all(d.startswith("esp32-0") for d in virtual)

    summary = json.loads((out / "summary.json").read_text())
    m = {k: figures(summary, k) for k in {*summary["metrics"], *summary["scfleet"]["metrics"]}}
    # boards that finish their schedule normally are not "lost"
    assert not [n for n in summary["scfleet"]["notes"] if "lost" in n], summary["scfleet"]["notes"]
    assert "boards_lost" not in m or m["boards_lost"]["count"] == 0
    physical = int(m["http_reqs{kind:physical}"]["count"])
    assert physical == sum(len(by_dev[b]) for b in boards)
    assert int(m["http_reqs{kind:virtual}"]["count"]) == sum(len(by_dev[d]) for d in virtual)
    assert m["http_req_failed{kind:physical}"]["value"] == 0
    assert m["http_req_duration{kind:physical}"]["avg"] > 0
    text = (out / "summary.txt").read_text()
    assert "{ kind:physical }" in text and "{ kind:virtual }" in text
    assert "4 of 4 ready" in text and "Wi-Fi 'lab', key set on 4 of 4" in text
    with open(out / "devices.csv") as fh:
        devices = [r for r in csv.DictReader(fh) if r["kind"] == "physical"]
    assert {r["device_id"] for r in devices} == boards
    assert all(int(r["ok"]) == len(by_dev[r["device_id"]]) for r in devices)

    # the key went to the boards (they say wifi_key_set) but is in no output
    assert KEY not in res.out and KEY not in res.err
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
