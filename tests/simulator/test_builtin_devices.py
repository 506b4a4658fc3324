"""The built-in kinds are written on the device API (simulator.builtin_devices): ai_analysis and
auth_flow run those classes; iot_upload keeps its callback fast path, and the same scenario run
through the fast path and through the shipped API class (``kind = "python:simulator.
builtin_devices:IotUpload"``) against the real reference server sends the same requests (the
server's ledger: device ids, sequences, sample rate, content type, bytes and their SHA-256; the
same bytes on the wire) and records the same metrics, tags, checks and devices.csv rows."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from simulator.run.devices import IotUpload, PythonDevices, make_behaviour

pytestmark = pytest.mark.slow

SCENARIO = """
[scenarios.up]
executor = "per-vu-iterations"
vus = 4
iterations = 5
max_duration = "30s"
[scenarios.up.device]
kind = "KIND"
chunk_bytes = 4000
id_pattern = "node-{n:03d}"
id_start = 7
headers = { "X-Fleet" = "blue" }
[[scenarios.up.checks]]
name = "is status 200"
status = 200
[thresholds]
http_req_failed = ["rate==0"]
"checks{check:is status 200}" = ["rate==1"]
"""

API_CLASS = "python:simulator.builtin_devices:IotUpload"


def _ledger(run_dir: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(run_dir / "server" / "ledger.sqlite")
    try:
        return sorted(
            db.execute(
                "SELECT device_id, sequence, bytes, sha256, sample_rate, content_type FROM uploads"
            ).fetchall()
        )
    finally:
        db.close()


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "devices.csv", newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: r["device_id"])


#: The run's gauges sampled by its once-a-second tick (as k6's), whatever the devices do: a
#: run of 20 uploads ends before its first tick unless the machine is loaded, so one of the
#: two runs had them and the other not ("Extra items in the left set: ('vus', ())", 1 run in
#: 8 with SCHED_FIFO bursts on both cores).
TICK_GAUGES = ("vus", "vus_max")


def _series(run: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    """Every series by (name, tags) but the tick's gauges; the ``url`` tag's host:port (each
    run's own embedded server) cut to its path."""
    reg = run.result.registry
    reg.flush()
    out = {}
    for (name, tags), value in reg.series.items():
        if name in TICK_GAUGES:
            continue
        fixed = tuple((k, "/" + v.split("/", 3)[-1] if k == "url" else v) for k, v in tags)
        out[(name, fixed)] = value
    return out


def test_iot_upload_fast_path_and_its_api_class_behave_the_same(tmp_path: Path, fleet: Any) -> None:
    runs = {}
    for kind in ("iot_upload", API_CLASS):
        cfg = tmp_path / f"{kind.split(':')[-1]}.toml"
        cfg.write_text(SCENARIO.replace("KIND", kind))
        runs[kind] = fleet.run(cfg)
        runs[kind].assert_ok()
    fast, api = runs["iot_upload"], runs[API_CLASS]
    # which engine path each took
    assert fast.summary["scfleet"]["scenarios"]["up"]["device"] == "iot_upload"
    assert api.summary["scfleet"]["scenarios"]["up"]["device"] == "python"
    # the server saw the same uploads: ids from id_pattern/id_start, sequences 0..4, the
    # sample rate header, octet-stream, the same PCM bytes from the audio bank
    ledger = _ledger(fast.run_dir)
    assert ledger == _ledger(api.run_dir)
    assert {(d, q) for d, q, *_ in ledger} == {
        (f"node-{n:03d}", q) for n in range(7, 11) for q in range(5)
    }
    assert {(b, sr, ct) for _, _, b, _, sr, ct in ledger} == {
        (4000, 16000, "application/octet-stream")
    }
    # the same series (metric names and every tag), the same counts, the same bytes on the
    # wire (request heads included: same headers); a user class also reports iteration_errors
    a, b = _series(fast), _series(api)
    assert set(b) - set(a) == {("iteration_errors", (("kind", "virtual"), ("scenario", "up")))}
    assert set(a) <= set(b)
    assert ("url", "/api/esp32/audio/upload") in next(k for k in a if k[0] == "http_reqs")[1]
    for key, value in a.items():
        name = key[0]
        if name in ("http_reqs", "iterations", "data_sent", "data_received"):
            assert value.value == b[key].value, key
        elif name in ("checks", "http_req_failed"):
            assert (value.passes, value.total) == (b[key].passes, b[key].total), key
        elif hasattr(value, "hist"):
            assert value.hist.count == b[key].hist.count, key
    assert fast.metric("http_reqs")["count"] == 20
    assert fast.metric("checks")["passes"] == api.metric("checks")["passes"] == 20
    # devices.csv: the same rows, column for column
    assert _rows(fast.run_dir) == _rows(api.run_dir)
    assert [r["next_sequence"] for r in _rows(api.run_dir)] == ["5"] * 4
    assert [r["bytes_ok"] for r in _rows(api.run_dir)] == ["20000"] * 4


def test_the_built_in_kinds_run_on_the_device_api(tmp_path: Path) -> None:
    """ai_analysis and auth_flow are Device classes under PythonDevices; iot_upload is the
    fast path. Their runs keep the summary and devices.csv of before (test_scenarios)."""
    from scfleet import api
    from simulator import builtin_devices
    from simulator.metrics import IntervalStats, Registry
    from simulator.run.devices import RunContext

    cfg_file = Path(__file__).resolve().parents[2] / "configs" / "seed_plan.toml"
    cfg = api.load(cfg_file)
    ctx = RunContext(Registry(), transport=None, bank=None, loop_to_perf=0.0)  # type: ignore[arg-type]
    made = {sc.device.kind: make_behaviour(sc, ctx, IntervalStats(), {}) for sc in cfg.scenarios}
    assert isinstance(made["iot_upload"], IotUpload)
    for kind, cls in (
        ("ai_analysis", builtin_devices.AiAnalysis),
        ("auth_flow", builtin_devices.AuthFlow),
    ):
        assert isinstance(made[kind], PythonDevices) and made[kind].cls is cls
    # no iteration_errors series for a built-in kind until one of its iterations fails
    assert not [k for k in ctx.registry.series if k[0] == "iteration_errors"]


AUTH = """
[scenarios.auth]
executor = "per-vu-iterations"
vus = 3
iterations = 4
max_duration = "30s"
[scenarios.auth.device]
kind = "auth_flow"
[[scenarios.auth.checks]]
name = "is status 200"
status = 200
"""


def test_auth_flow_on_the_api_logs_in_once_and_its_checks_judge_only_verifies(
    tmp_path: Path, fleet: Any
) -> None:
    cfg = tmp_path / "auth.toml"
    cfg.write_text(AUTH)
    run = fleet.run(cfg)
    run.assert_ok()
    rows = _rows(run.run_dir)
    assert len(rows) == 3
    for r in rows:  # as before: one login, four verifies, no upload bytes
        assert (r["requests"], r["ok"], r["logins"], r["next_sequence"], r["bytes_ok"]) == (
            "5", "5", "1", "4", "0"
        )  # fmt: skip
    assert run.metric("http_reqs")["count"] == 15
    assert run.metric("checks")["passes"] == 12  # the verifies; logins are not judged
    reg = run.result.registry
    assert set(reg.tag_values("endpoint", "http_reqs")) == {"/api/auth/login", "/api/auth/verify"}
    assert "iteration_errors" not in {k[0] for k in reg.series}
