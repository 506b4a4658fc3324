"""``scfleet compare BASE NEW --fail-on SPEC``: the regression gate, on a real run folder (a
quick server on loopback) and a copy of it whose request durations are made slower by a known
amount (the ``runs`` fixture says why not a second real run)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.report.gate import Unit, parse_spec

pytestmark = pytest.mark.slow

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
time_unit = "1s"
duration = "3s"
pre_allocated_devices = 10
max_devices = 20

[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 2000

[[scenarios.up.checks]]
name = "is status 200"
status = 200

[thresholds]
http_reqs = ["count>0"]
"""


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    """An aiohttp server on 127.0.0.1 whose upload delay the test sets (``state["delay"]``)."""
    from aiohttp import web

    state: dict[str, Any] = {"delay": 0.0}

    async def upload(req: web.Request) -> web.Response:
        await req.read()
        await asyncio.sleep(state["delay"])
        return web.json_response({"status": "ok"})

    async def health(req: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/api/esp32/audio/upload", upload)
    app.router.add_get("/health", health)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    state["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def runs(
    server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[pathlib.Path, pathlib.Path]:
    """BASE: a real run against the quick server. NEW: BASE's folder with every request
    duration figure doubled plus 60 ms (as a server answering 60 ms later and a slower path
    would make it), so the verdicts below hold however loaded the machine is. Two real runs
    (the second against the server 60 ms later) were compared before: under load the quick
    run's p95 was 219 ms and the slow one's 119 ms, and the gate rightly passed NEW."""
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    d = tmp_path_factory.mktemp("gate")
    cfg = d / "up.toml"
    cfg.write_text(SCENARIO)
    res = subprocess.run(
        [sys.executable, "-m", "scfleet", "run", str(cfg), "--target", server["url"]]
        + ["--out", str(d / "base"), "--quiet"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    base, slow = d / "base", d / "slow"
    shutil.copytree(base, slow)
    doc = json.loads((slow / "summary.json").read_text())
    trend = doc["metrics"]["http_req_duration"]
    for stat, value in trend.items():
        if isinstance(value, int | float) and stat != "count":
            trend[stat] = value * 2 + 60
    (slow / "summary.json").write_text(json.dumps(doc))
    return base, slow


def _p95(run: pathlib.Path) -> float:
    return float(
        json.loads((run / "summary.json").read_text())["metrics"]["http_req_duration"]["p(95)"]
    )


def test_gate_fails_when_new_is_slower_and_writes_junit(
    runs: tuple[pathlib.Path, pathlib.Path], scfleet: Any, tmp_path: pathlib.Path
) -> None:
    base, slow = runs
    assert _p95(slow) == _p95(base) * 2 + 60
    junit = tmp_path / "gate.xml"
    res = scfleet(
        "compare",
        str(base),
        str(slow),
        "--fail-on",
        "p(95)+10%,error_rate+0.5pp",
        "--junit",
        str(junit),
    )
    assert res.returncode == 99, res.stdout + res.stderr
    assert "warning" not in res.stderr  # the same scenario file, the same time scale
    lines = res.stdout.splitlines()
    assert any(ln.split()[:2] == ["FAIL", "p(95)+10%"] for ln in lines), res.stdout
    assert any(ln.split()[:2] == ["ok", "error_rate+0.5pp"] for ln in lines), res.stdout
    assert "gate: FAILED 1 of 2 (p(95)+10%)" in res.stdout
    assert max(len(ln) for ln in lines) < 120  # fits a CI log
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["p(95)+10%"].find("failure") is not None
    assert cases["error_rate+0.5pp"].find("failure") is None
    # a margin wide enough for the difference passes; the slower run is not worse the other way
    margin = _p95(slow) - _p95(base) + 1
    wide = scfleet("compare", str(base), str(slow), "--fail-on", f"p(95)+{margin:.0f}ms")
    assert wide.returncode == 0, wide.stdout + wide.stderr
    assert "gate: passed 1 of 1" in wide.stdout
    back = scfleet("compare", str(slow), str(base), "--fail-on", "p(95)+10%,avg+0%")
    assert back.returncode == 0, back.stdout + back.stderr
    drop = scfleet("compare", str(base), str(base), "--fail-on", "throughput-5%,checks-0pp")
    assert drop.returncode == 0, drop.stdout + drop.stderr
    missing = scfleet("compare", str(base), str(base), "--fail-on", "vus.p(99)+5%")
    assert missing.returncode == 99 and "not in the BASE run's summary" in missing.stdout


def test_gate_warns_when_the_configurations_differ(
    runs: tuple[pathlib.Path, pathlib.Path], scfleet: Any, tmp_path: pathlib.Path
) -> None:
    base, _ = runs
    other = tmp_path / "other"
    shutil.copytree(base, other)
    doc = json.loads((other / "config.json").read_text())
    doc["config"]["scenarios"]["up"]["rate"] = 40
    doc["time_scale"] = 0.5
    (other / "config.json").write_text(json.dumps(doc))
    res = scfleet("compare", str(base), str(other), "--fail-on", "p(95)+10%")
    assert res.returncode == 0, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scfleet: warning:")
    assert "scenarios.up.rate" in err[0] and "time_scale" in err[0]


@pytest.mark.parametrize(
    "spec, says",
    [
        ("p(95)+10", "expected FIGURE"),
        ("p(95)*10%", "expected FIGURE"),
        ("latency+10%", "unknown figure"),
        ("throughput+1pp", "'pp'"),
        ("error_rate+5ms", "'ms'"),
        ("", "empty --fail-on"),
    ],
)
def test_bad_spec_is_a_one_line_usage_error(spec: str, says: str, scfleet: Any) -> None:
    res = scfleet("compare", "nowhere-a", "nowhere-b", "--fail-on", spec)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and says in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_grammar() -> None:
    r = parse_spec("p(95)+10%, error_rate+0.5pp,http_req_duration{scenario:a,b}.p(99.9)-3ms")
    assert [(x.metric, x.stat, x.higher_is_worse, x.margin, x.unit) for x in r] == [
        ("http_req_duration", "p(95)", True, 10.0, Unit.PERCENT),
        ("http_req_failed", "value", True, 0.5, Unit.POINTS),
        ("http_req_duration{scenario:a,b}", "p(99.9)", False, 3.0, Unit.MS),
    ]
    assert r[0].limit(200.0) == pytest.approx(220.0)
    assert r[1].limit(0.01) == pytest.approx(0.015)
    assert r[2].limit(50.0) == pytest.approx(47.0)
