"""Seed scenarios 1 and 3: multipart analysis uploads and the login flow."""

from __future__ import annotations

import asyncio
import csv
import json
import pathlib
import sqlite3
import tracemalloc
from typing import Any

import pytest
import vtime

from simulator.config import load_config, parse_config
from simulator.http import FakeReply, FakeTransport, Request
from simulator.report.summary import figures
from simulator.run.runner import Environment, build_bank

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ai_analysis_end_to_end(tmp_path: pathlib.Path, scfleet: Any) -> None:
    out = tmp_path / "run"
    res = scfleet(
        "run",
        "configs/ai_analysis.toml",
        "--time-scale",
        "0.005",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "scenarios.ai_analysis.think_time='1s'",
    )
    assert res.returncode == 0, res.stderr + res.stdout
    summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    reqs = int(m["http_reqs"]["count"])
    assert reqs >= 20
    assert m["checks"]["value"] == 1.0  # status 200 and an anomaly_score in every answer
    assert m["data_sent"]["count"] / reqs > 90_000  # 3–15 s WAVs: ~96–480 KB each
    with open(out / "devices.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["requests"])]
    assert len(rows) > 15 and sum(int(r["ok"]) for r in rows) == reqs


def test_analysis_bodies_are_valid_wavs_that_differ() -> None:
    """Every upload is a multipart form with a decodable WAV, different per device and upload."""
    import io

    import soundfile as sf

    cfg = parse_config(
        {
            "scenarios": {
                "ai": {
                    "executor": "per-vu-iterations",
                    "vus": 3,
                    "iterations": 2,
                    "device": {
                        "kind": "ai_analysis",
                        "min_seconds": 3,
                        "max_seconds": 15,
                        "extra_fields": {"sensor": "line-4"},
                    },
                }
            },
        }
    )
    seen: list[Request] = []

    def handler(req: Request) -> FakeReply:
        seen.append(req)
        return FakeReply(200, b'{"anomaly_score": 0.1}')

    env = Environment(cfg, FakeTransport(handler), bank=build_bank(cfg))
    asyncio.run(env.run())
    assert len(seen) == 6
    digests = set()
    for req in seen:
        ctype = req.headers["Content-Type"]
        assert ctype.startswith("multipart/form-data; boundary=")
        boundary = ctype.split("boundary=")[1].encode()
        body = b"".join(bytes(p) for p in req.body)  # type: ignore[union-attr]
        parts = body.split(b"--" + boundary)
        assert parts[-1].strip() == b"--"
        fields = {}
        for part in parts[1:-1]:
            head, _, content = part.partition(b"\r\n\r\n")
            fields[head] = content[:-2]
        (audio_head,) = [h for h in fields if b'name="audio"' in h]
        assert b'filename="test.wav"' in audio_head and b"Content-Type: audio/wav" in audio_head
        assert any(b'name="sensor"' in h and fields[h] == b"line-4" for h in fields)
        data, rate = sf.read(io.BytesIO(fields[audio_head]), dtype="int16")
        assert rate == 16000 and 3 <= len(data) / rate <= 15
        assert 96_000 <= len(fields[audio_head]) <= 480_100
        digests.add(hash(fields[audio_head]))
    assert len(digests) == 6


def _auth_cfg(vus: int, csv_path: pathlib.Path | None = None) -> dict[str, object]:
    device: dict[str, object] = {"kind": "auth_flow"}
    if csv_path:
        device["accounts_csv"] = str(csv_path)
    return {
        "scenarios": {
            "auth": {
                "executor": "constant-vus",
                "vus": vus,
                "duration": "3s",
                "think_time": "0.25s",
                "device": device,
            }
        }
    }


def test_auth_keeps_one_session_and_relogs_in_on_401(tmp_path: pathlib.Path) -> None:
    accounts = tmp_path / "acc.csv"
    accounts.write_text("username,password\n" + "".join(f"u{i},pw{i}\n" for i in range(3)))
    logins: dict[str, int] = {}
    verifies: dict[str, int] = {}
    expired_once = set()

    async def handler(req: Request) -> FakeReply:
        await asyncio.sleep(0.01)
        if req.path == "/api/auth/login":
            user = json.loads(req.body)["username"]  # type: ignore[arg-type]
            logins[user] = logins.get(user, 0) + 1
            return FakeReply(200, b"{}", set_cookies={"session": f"tok-{user}-{logins[user]}"})
        token = (req.cookies or {}).get("session", "")
        user = token.split("-")[1] if token else "?"
        verifies[user] = verifies.get(user, 0) + 1
        if user == "u1" and verifies[user] == 3 and user not in expired_once:
            expired_once.add(user)
            return FakeReply(401, b'{"valid": false}')
        return FakeReply(200, b'{"valid": true}')

    cfg = parse_config(_auth_cfg(3, accounts))
    from simulator.run.runner import load_all_accounts

    env = Environment(cfg, FakeTransport(handler), accounts=load_all_accounts(cfg))
    vtime.run_virtual(env.run())
    assert logins == {"u0": 1, "u1": 2, "u2": 1}  # one per device, plus the forced re-login
    assert all(n > 5 for n in verifies.values())


def test_accounts_csv_too_short_is_a_config_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``scfleet run`` in-process (:func:`scfleet.cli.main`, as the bad-input corpus runs it):
    a subprocess cost ~0.5 s of CPU in the fast tier for the same exit code and line."""
    from scfleet.cli import main

    accounts = tmp_path / "acc.csv"
    accounts.write_text("username,password\nu0,secret-pw-0\n")
    cfg = tmp_path / "auth.toml"
    cfg.write_text(f"""
[scenarios.auth]
executor = "constant-vus"
vus = 5
duration = "1s"
[scenarios.auth.device]
kind = "auth_flow"
accounts_csv = "{accounts}"
""")
    code = main(["run", str(cfg), "--target", "http://127.0.0.1:9", "--out", str(tmp_path / "r")])
    captured = capsys.readouterr()
    stderr = captured.err
    assert code == 104
    assert f"{accounts}: scenarios.auth.device.accounts_csv: has 1 accounts" in stderr
    assert "up to 5 devices" in stderr and "secret-pw-0" not in stderr
    assert "secret-pw-0" not in captured.out


@pytest.mark.slow
def test_login_flow_against_reference_server(
    tmp_path: pathlib.Path, scfleet: Any, reference_server: Any
) -> None:
    """Real server: one login per device; wrong passwords are failures; no password leaks."""
    from reference_server.accounts import seed_accounts

    data = tmp_path / "srv"
    data.mkdir()
    accounts = tmp_path / "acc.csv"
    seed_accounts(data, 8, accounts, prefix="dev", scrypt_n=1024)
    rows = list(csv.DictReader(accounts.open()))
    secrets = [r["password"] for r in rows]
    bad = tmp_path / "bad.csv"
    with bad.open("w") as fh:  # two devices carry a wrong password
        fh.write("username,password\n")
        for i, r in enumerate(rows):
            fh.write(f"{r['username']},{'wrong-' + r['password'] if i < 2 else r['password']}\n")
    url = reference_server(data).url
    good_cfg = tmp_path / "good.toml"
    good_cfg.write_text(f"""
[scenarios.auth]
executor = "constant-vus"
vus = 8
duration = "3s"
think_time = "0.2s"
[scenarios.auth.device]
kind = "auth_flow"
accounts_csv = "{accounts}"
[[scenarios.auth.checks]]
name = "valid"
status = 200
json_equals = {{ valid = true }}
[thresholds]
http_req_failed = ["rate<0.01"]
""")
    out = tmp_path / "good"
    res = scfleet("run", str(good_cfg), "--target", url, "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr + res.stdout
    db = sqlite3.connect(data / "users.sqlite")
    per_user = dict(db.execute("SELECT username, count(*) FROM logins GROUP BY username"))
    assert per_user == {r["username"]: 1 for r in rows}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["checks"]["value"] == 1.0
    assert summary["metrics"]["http_reqs"]["count"] > 8 * 5

    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text(good_cfg.read_text().replace(str(accounts), str(bad)))
    out2 = tmp_path / "bad"
    res2 = scfleet("run", str(bad_cfg), "--target", url, "--out", str(out2), "--quiet")
    assert res2.returncode == 99
    s2 = json.loads((out2 / "summary.json").read_text())
    failed = s2["metrics"]["http_req_failed"]
    assert failed["passes"] > 0
    metrics = json.loads((out2 / "metrics.json").read_text())
    assert any(
        s["metric"] == "http_reqs"
        and s["tags"].get("status") == "401"
        and s["tags"].get("endpoint") == "/api/auth/login"
        for s in metrics["series"]
    )
    blobs = [res.stdout, res.stderr, res2.stdout, res2.stderr]
    for folder in (out, out2):
        blobs += [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()]
    for pw in secrets:
        assert all(pw not in b for b in blobs)


def _analysis_memory(devices: int) -> int:
    cfg = parse_config(
        {
            "scenarios": {
                "ai": {
                    "executor": "constant-vus",
                    "vus": devices,
                    "duration": "20s",
                    "think_time": "5s",
                    "device": {"kind": "ai_analysis", "min_seconds": 3, "max_seconds": 15},
                }
            },
        }
    )
    bank = build_bank(cfg)

    async def slow(req: Request) -> FakeReply:
        await asyncio.sleep(1.0)  # every device holds a request body in flight at once
        return FakeReply(200, b"{}")

    tracemalloc.start()
    try:
        env = Environment(cfg, FakeTransport(slow, keep=False), bank=bank)
        vtime.run_virtual(env.run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reqs = env.registry.aggregate("http_reqs", {}, "count")
    assert reqs and reqs >= devices * 3
    return peak


@pytest.mark.slow
def test_memory_does_not_grow_with_devices_like_k6_open() -> None:
    """Shared buffers: 1,000 analysis devices cost a few MB more than 10, not 1,000 WAV copies."""
    small = _analysis_memory(10)
    big = _analysis_memory(1000)
    # ~5 KB per device in flight (tasks, request objects); one WAV copy per device, as k6's
    # per-VU open() makes, would be 96–480 KB each: 100–480 MB for 1,000 devices.
    assert big - small < 8 * 1024 * 1024, (small, big)


def test_seed_configs_load_with_seed_values() -> None:
    ai = load_config(ROOT / "configs" / "ai_analysis.toml")
    (sc,) = ai.scenarios
    levels = sorted({int(s.target) for s in sc.executor.stages} - {0})  # type: ignore[union-attr]
    assert levels == [15, 30, 50] and sc.think_time == 5
    assert sc.device.field == "audio"  # type: ignore[union-attr]
    auth = load_config(ROOT / "configs" / "auth_flow.toml")
    assert auth.scenarios[0].executor.vus == 100  # type: ignore[union-attr]
    plan = load_config(ROOT / "configs" / "seed_plan.toml", time_scale=0.01)
    assert [s.name for s in plan.scenarios] == ["ai_analysis", "iot_upload", "auth_flow"]
    assert plan.total_duration < 40


@pytest.mark.slow
def test_seed_plan_runs_all_three_scenarios_on_the_embedded_server(
    tmp_path: pathlib.Path, scfleet: Any
) -> None:
    out = tmp_path / "plan"
    res = scfleet(
        "run",
        "configs/seed_plan.toml",
        "--time-scale",
        "0.004",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "scenarios.auth_flow.vus=20",
        "--set",
        "scenarios.ai_analysis.think_time='1s'",
    )
    assert res.returncode == 0, res.stderr + res.stdout
    summary = json.loads((out / "summary.json").read_text())
    m = {k: figures(summary, k) for k in {*summary["metrics"], *summary["scfleet"]["metrics"]}}
    for name in ("ai_analysis", "iot_upload", "auth_flow"):
        assert m[f"http_reqs{{scenario:{name}}}"]["count"] > 0, name
        assert m[f"http_req_failed{{scenario:{name}}}"]["value"] == 0, name
    db = sqlite3.connect(out / "server" / "users.sqlite")
    per_user = dict(db.execute("SELECT username, count(*) FROM logins GROUP BY username"))
    assert len(per_user) == 20 and set(per_user.values()) == {1}
    uploads = (
        sqlite3.connect(out / "server" / "ledger.sqlite")
        .execute("SELECT count(*) FROM uploads")
        .fetchone()[0]
    )
    assert uploads == m["http_reqs{scenario:iot_upload}"]["count"]
    assert not list(out.rglob("accounts*.csv"))  # generated passwords stay out of the run folder


def test_uploads_still_in_flight_after_the_graceful_stop_are_interrupted_not_recorded() -> None:
    """The upload hot path finishes from the transport's callback: replies that arrive after
    the graceful stop must not change what the run reports."""
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-arrival-rate",
                    "rate": 10,
                    "duration": "2s",
                    "pre_allocated_devices": 50,
                    "graceful_stop": "1s",
                    "device": {"chunk_bytes": 320},
                }
            },
        }
    )
    slow_after = 1.0  # requests started in the second half take 10 s

    async def handler(req: Request) -> FakeReply:
        loop = asyncio.get_running_loop()
        if loop.time() - t0 >= slow_after:
            await asyncio.sleep(10)
        return FakeReply(200, b"{}")

    async def main() -> tuple[float, float, float]:
        nonlocal t0
        t0 = asyncio.get_running_loop().time()
        env = Environment(cfg, FakeTransport(handler), bank=build_bank(cfg))
        result = await env.run()
        reg = result.registry
        counted = reg.aggregate("http_reqs", {}, "count")
        interrupted = reg.aggregate("interrupted_iterations", {}, "count")
        await asyncio.sleep(20)  # the slow replies arrive now
        return counted, interrupted, reg.aggregate("http_reqs", {}, "count")

    t0 = 0.0
    counted, interrupted, later = vtime.run_virtual(main())
    assert counted == 10 and interrupted == 10
    assert later == counted
