"""Devices written in Python (``kind = "python:FILE.py:Class"``, simulator.userdevice): their
requests are recorded under k6's names with tags, checks and custom metrics reach the summary and
thresholds, a raising method is an error counted on its iteration (the run goes on), and bad user
code is a one-line error naming the file (exit 104)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from scfleet import api
from scfleet_core.errors import ConfigError
from simulator.report.summary import figures

ROOT = Path(__file__).resolve().parents[2]

DEVICE = """
from simulator.userdevice import Counter, Device, Gauge, Rate, Trend


class Probe(Device):
    audio_bytes = 3200
    sent = Counter("probe_sent")
    big = Rate("probe_big")
    level = Gauge("probe_level")
    size = Trend("probe_size")
    took = Trend("probe_ms", time=True)

    async def on_start(self):
        self.n = 0
        self.every = int(self.options["fail_every"])

    async def iteration(self):
        self.n += 1
        pcm = self.audio.chunk(self.n)
        assert len(pcm) == 3200 and self.audio.sample_rate == 16000
        res = await self.client.post(
            "/api/esp32/audio/upload",
            data=pcm,
            headers={"X-Device-ID": self.device_id, "X-Sample-Rate": "16000",
                     "X-Sequence": str(self.n - 1)},
        )
        self.check("upload ok", res.status == 200)
        self.sent.add(1, index=str(self.index))
        self.big.add(len(pcm) > 1000)
        self.level.add(self.index)
        self.size.add(len(pcm))
        self.took.add(res.duration_ms)
        form = await self.client.post(
            "/api/lightweight-analyze",
            files={"audio": ("a.wav", self.audio.wav(self.n), "audio/wav")},
            fields={"note": "probe"},
        )
        self.check("analysed", form.ok and "analysis" in json.dumps(form.json()) or form.ok)
        await self.client.get("/health", name="health")
        await self.client.post("/api/auth/login", json={"username": "x", "password": "y"})
        if self.n % self.every == 0:
            raise RuntimeError(f"probe {self.device_id} gave up on {self.n}")
        return None


import json  # noqa: E402 - after the class on purpose: module globals resolve at call time
"""

SCENARIO = """
[scenarios.probes]
executor = "per-vu-iterations"
vus = 3
iterations = 4
max_duration = "30s"
[scenarios.probes.device]
kind = "python:dev/probe.py:Probe"
fail_every = 2
[thresholds]
probe_sent = ["count==12"]
probe_big = ["rate==1"]
probe_size = ["avg==3200"]
"probe_ms" = ["p(95)<5000"]
"checks{check:upload ok}" = ["rate==1"]
iteration_errors = ["count==6"]
"""


def write(tmp_path: Path, device: str = DEVICE, scenario: str = SCENARIO) -> Path:
    (tmp_path / "dev").mkdir(exist_ok=True)
    (tmp_path / "dev" / "probe.py").write_text(device)
    cfg = tmp_path / "probes.toml"
    cfg.write_text(scenario)
    return cfg


@pytest.mark.slow
def test_a_python_device_records_like_a_built_in_and_its_errors_are_counted(
    tmp_path: Path, fleet: Any
) -> None:
    run = fleet.run(write(tmp_path))
    run.assert_ok()  # every threshold above held, custom metrics included
    s = run.summary
    m = {k: figures(s, k) for k in {*s["metrics"], *s["scfleet"]["metrics"]}}
    # 3 devices × 4 iterations × 4 requests, each under k6's names with endpoint/method tags
    assert m["http_reqs"]["count"] == 48
    reg = run.result.registry
    endpoints = reg.tag_values("endpoint", "http_reqs")
    assert set(endpoints) == {
        "/api/esp32/audio/upload",
        "/api/lightweight-analyze",
        "health",
        "/api/auth/login",
    }
    assert set(reg.tag_values("method", "http_reqs")) == {"GET", "POST"}
    assert m["iterations"]["count"] == 12
    assert m["iteration_errors"]["count"] == 6  # iterations 2 and 4 of each device raised
    assert m["probe_level"]["max"] == 2 and m["probe_level"]["min"] == 0
    assert m["probe_sent"]["count"] == 12
    text = run.summary_text  # the text summary lists custom metrics beside k6's
    for name in ("probe_sent", "probe_big", "probe_level", "probe_size", "iteration_errors"):
        assert f" {name}...." in text, name
    notes = s["scfleet"]["notes"]
    assert any("Probe.iteration raised RuntimeError: probe esp32-" in n for n in notes), notes
    # the uploads reached the server with the device's id and sequence, bytes from audio_synth
    db = sqlite3.connect(run.run_dir / "server" / "ledger.sqlite")
    rows = db.execute("SELECT device_id, sequence, bytes FROM uploads").fetchall()
    assert sorted(rows) == [(f"esp32-{d:06d}", q, 3200) for d in (1, 2, 3) for q in range(4)]
    with open(run.run_dir / "devices.csv") as fh:
        assert fh.read().count("esp32-") == 3


def test_declared_custom_metrics_pass_threshold_validation_and_typos_do_not(
    tmp_path: Path,
) -> None:
    cfg = api.load(write(tmp_path))
    assert {t.metric for t in cfg.thresholds} >= {"probe_sent", "probe_ms", "iteration_errors"}
    typo = SCENARIO.replace('probe_sent = ["count==12"]', 'probe_snet = ["count==12"]')
    with pytest.raises(
        ConfigError, match=r"no metric named 'probe_snet' \(did you mean probe_sent"
    ):
        api.load(write(tmp_path, scenario=typo))
    wrong = SCENARIO.replace('probe_big = ["rate==1"]', 'probe_big = ["p(95)<1"]')
    with pytest.raises(ConfigError, match="probe_big is a rate metric"):
        api.load(write(tmp_path, scenario=wrong))


@pytest.mark.parametrize(
    ("device", "kind", "message"),
    [
        (DEVICE, "python:dev/missing.py:Probe", r"dev/missing\.py: no such file"),
        (
            DEVICE,
            "python:dev/probe.py:Nope",
            r"probe\.py: no class named 'Nope' \(device classes there: Probe\)",
        ),
        ("class Probe(:\n", "python:dev/probe.py:Probe", r"probe\.py: syntax error at line 1"),
        (
            "raise KeyError('boom')\n",
            "python:dev/probe.py:Probe",
            r"probe\.py: importing it raised KeyError",
        ),
        (
            "class Probe:\n    pass\n",
            "python:dev/probe.py:Probe",
            "not a subclass of simulator.userdevice.Device",
        ),
        (
            DEVICE,
            "python:no_such_pkg_xyz:Probe",
            r"no_such_pkg_xyz: no module named 'no_such_pkg_xyz'",
        ),
        (DEVICE, "python:Probe", "expected python:path/to/file.py:ClassName"),
    ],
)
def test_bad_user_code_is_a_one_line_config_error_naming_the_file(
    tmp_path: Path, device: str, kind: str, message: str
) -> None:
    cfg = write(tmp_path, device, SCENARIO.replace("python:dev/probe.py:Probe", kind))
    with pytest.raises(ConfigError, match=message) as err:
        api.load(cfg)
    assert "\n" not in str(err.value)


def test_bad_user_code_exits_107_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``scfleet run`` in-process (:func:`scfleet.cli.main`): a subprocess cost ~0.5 s of CPU
    in the fast tier for the same exit code and line."""
    from scfleet.cli import main

    cfg = write(tmp_path, "class Probe(:\n")
    code = main(["run", str(cfg), "--out", str(tmp_path / "run")])
    stderr = capsys.readouterr().err
    assert code == 107, stderr  # k6's ScriptException (tests/edge18/test_script_error_exit.py)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "probe.py: syntax error at line 1" in lines[0], stderr
    assert "Traceback" not in stderr and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_example_anomaly_sensor_uploads_only_batches(fleet: Any) -> None:
    run = fleet.run("configs/anomaly_sensor.toml", time_scale=0.2)  # 30 s -> 6 s
    run.assert_ok()
    batches = run.metric("anomaly_batches")["count"]
    reqs = run.metric("http_reqs")["count"]
    iterations = run.metric("iterations")["count"]
    assert 0 < batches == reqs < iterations / 2  # far fewer uploads than listens
    db = sqlite3.connect(run.run_dir / "server" / "ledger.sqlite")
    sizes = {b for (b,) in db.execute("SELECT bytes FROM uploads")}
    assert sizes == {3 * 32000}  # each upload is a 3-second batch
    assert json.loads((run.run_dir / "summary.json").read_text())["metrics"]["anomaly_batches"]


IOT_LIKE = '''
from simulator.userdevice import Device


class IotLike(Device):
    """The built-in iot_upload kind, written on the device API."""

    audio_bytes = 3200

    async def on_start(self):
        self.seq = 0

    async def iteration(self):
        res = await self.client.post(
            "/api/esp32/audio/upload",
            data=self.audio.chunk(self.seq),
            headers={
                "X-Device-ID": self.device_id,
                "X-Sample-Rate": str(self.audio.sample_rate),
                "X-Sequence": str(self.seq),
            },
        )
        self.seq += 1
        return res.ok
'''

SAME = """
[scenarios.up]
executor = "per-vu-iterations"
vus = 3
iterations = 3
max_duration = "30s"
[scenarios.up.device]
kind = "KIND"
chunk_bytes = 3200
[[scenarios.up.checks]]
name = "is status 200"
status = 200
[thresholds]
http_req_failed = ["rate<0.01"]
"""


@pytest.mark.slow
def test_iot_upload_written_on_the_api_sends_and_records_what_the_built_in_does(
    tmp_path: Path, fleet: Any
) -> None:
    """The same server ledger (device ids, sequences, bytes, their SHA-256) and the same metric
    names and tags from the built-in kind and from the same device written in Python."""
    (tmp_path / "iot_like.py").write_text(IOT_LIKE)
    runs = {}
    for kind in ("iot_upload", "python:iot_like.py:IotLike"):
        text = SAME.replace("KIND", kind)
        if kind.startswith("python"):
            text = text.replace("chunk_bytes = 3200\n", "")
        cfg = tmp_path / f"{kind.split(':')[0]}.toml"
        cfg.write_text(text)
        runs[kind] = fleet.run(cfg)
        runs[kind].assert_ok()
    ledgers = []
    for run in runs.values():
        db = sqlite3.connect(run.run_dir / "server" / "ledger.sqlite")
        ledgers.append(
            sorted(
                db.execute(
                    "SELECT device_id, sequence, bytes, sha256, sample_rate, content_type "
                    "FROM uploads"
                ).fetchall()
            )
        )
    assert len(ledgers[0]) == 9 and ledgers[0] == ledgers[1]
    regs = [run.result.registry for run in runs.values()]
    keys = [
        {(name, tuple(k for k, _ in tags if k != "kind")) for name, tags in r.series} for r in regs
    ]
    assert keys[1] - keys[0] <= {("iteration_errors", ("scenario",))}
    assert keys[0] <= keys[1]
    for run in runs.values():  # the scenario's checks apply to a Python device's replies too
        assert run.metric("http_reqs")["count"] == 9
        assert run.metric("checks")["passes"] == 9 and run.metric("checks")["fails"] == 0


SCORER = """
from simulator.userdevice import Counter, Device, Trend


class Scorer(Device):
    score = Trend("unit_score")
    seen = Counter("unit_seen")

    async def iteration(self):
        self.score.add(0.25 + 0.5 * self.index)  # floats: 0.25, 0.75
        self.seen.add(1)
        await self.client.get("/health")
"""

SCORED = """
[scenarios.scores]
executor = "per-vu-iterations"
vus = 2
iterations = 2
max_duration = "30s"
[scenarios.scores.device]
kind = "python:dev/probe.py:Scorer"
[thresholds]
unit_score = ["min>0.2", "max<0.8"]
"""


@pytest.mark.slow
def test_custom_trends_keep_floats_and_unthresholded_custom_metrics_are_k6_metrics(
    tmp_path: Path, fleet: Any
) -> None:
    """A custom Trend keeps fractions (it kept whole numbers: 0.25 became 0, failing min>0.2);
    a custom metric no threshold names sits at the top of summary.json's metrics as k6's
    --summary-export lists a script's own metrics (it was only under scfleet.metrics), and in
    summary.txt and report.html."""
    run = fleet.run(write(tmp_path, SCORER, SCORED))
    run.assert_ok()
    s = run.summary
    score = s["metrics"]["unit_score"]
    assert set(score) == {"avg", "min", "med", "max", "p(90)", "p(95)", "thresholds"}
    assert score["min"] == pytest.approx(0.25) and score["max"] == pytest.approx(0.75)
    assert score["avg"] == pytest.approx(0.5)
    assert score["thresholds"] == {"min>0.2": False, "max<0.8": False}
    assert s["metrics"]["unit_seen"] == {"count": 4, "rate": s["metrics"]["unit_seen"]["rate"]}
    assert "unit_seen" not in s["scfleet"]["metrics"]
    assert s["scfleet"]["metrics"]["unit_score"] == {"p(99)": pytest.approx(0.75), "count": 4}
    text = run.summary_text
    assert " unit_seen...." in text and "unit_score" in text and "min=0.25" in text
    page = (run.run_dir / "report.html").read_text()
    assert 'id="custom-metrics"' in page and "unit_seen" in page and "min=0.25" in page


def test_a_device_whose_constructor_raises_is_reported_as_its_init(tmp_path: Path) -> None:
    """The note names the method that raised: ``__init__``, not ``on_start`` (never reached)."""
    import asyncio

    from simulator.metrics import IntervalStats, Registry
    from simulator.run.devices import RunContext, VirtualDevice, make_behaviour

    device = """
from simulator.userdevice import Device


class Probe(Device):
    def __init__(self):
        super().__init__()
        raise RuntimeError("no config")

    async def iteration(self):
        return None
"""
    cfg = api.load(write(tmp_path, device, SCENARIO.split("[thresholds]")[0]))
    ctx = RunContext(Registry(), transport=None, bank=None, loop_to_perf=0.0)  # type: ignore[arg-type]
    made = make_behaviour(cfg.scenarios[0], ctx, IntervalStats(), {})
    asyncio.run(made.iterate(VirtualDevice(0), 0.0))
    assert made.notes() == ["scenario probes: 1 × Probe.__init__ raised RuntimeError: no config"]


@pytest.mark.parametrize(
    ("method", "raised", "shown"),
    [
        ("iteration", "SystemExit(5)", "SystemExit: 5"),
        ("iteration", "KeyboardInterrupt", "KeyboardInterrupt: "),
        ("on_start", "SystemExit('bye')", "SystemExit: bye"),
    ],
)
def test_a_device_that_raises_system_exit_is_an_iteration_error(
    tmp_path: Path, method: str, raised: str, shown: str
) -> None:
    """``sys.exit()`` (or a ``KeyboardInterrupt`` of its own) in a device's method is one more
    iteration error. It escaped ``except Exception``: asyncio re-raised it out of the loop, so
    ``scfleet run --workers 1`` exited with the script's code (5), a "Task exception was never
    retrieved" traceback and no run folder; with workers, the worker died (exit 103)."""
    import asyncio

    from simulator.metrics import IntervalStats, Registry
    from simulator.run.devices import RunContext, VirtualDevice, make_behaviour

    device = f"""
from simulator.userdevice import Device


class Probe(Device):
    async def {method}(self):
        raise {raised}
"""
    if method != "iteration":
        device += "\n    async def iteration(self):\n        return None\n"
    cfg = api.load(write(tmp_path, device, SCENARIO.split("[thresholds]")[0]))
    ctx = RunContext(Registry(), transport=None, bank=None, loop_to_perf=0.0)  # type: ignore[arg-type]
    stats = IntervalStats()
    made = make_behaviour(cfg.scenarios[0], ctx, stats, {})
    try:
        asyncio.run(made.iterate(VirtualDevice(0), 0.0))
    except BaseException as exc:  # noqa: BLE001 - what the run's loop would have died of
        pytest.fail(f"escaped the iteration: {exc!r}")
    assert stats.iteration_errors == 1
    assert made.notes() == [f"scenario probes: 1 × Probe.{method} raised {shown}".rstrip()]


def test_a_device_whose_on_stop_raises_system_exit_is_noted(tmp_path: Path) -> None:
    import asyncio

    from simulator.metrics import IntervalStats, Registry
    from simulator.run.devices import RunContext, VirtualDevice, make_behaviour

    device = """
from simulator.userdevice import Device


class Probe(Device):
    async def iteration(self):
        return None

    async def on_stop(self):
        raise SystemExit(3)
"""
    cfg = api.load(write(tmp_path, device, SCENARIO.split("[thresholds]")[0]))
    ctx = RunContext(Registry(), transport=None, bank=None, loop_to_perf=0.0)  # type: ignore[arg-type]
    made = make_behaviour(cfg.scenarios[0], ctx, IntervalStats(), {})

    async def go() -> None:
        await made.iterate(VirtualDevice(0), 0.0)
        await made.close()

    try:
        asyncio.run(go())
    except BaseException as exc:  # noqa: BLE001 - what the run's loop would have died of
        pytest.fail(f"escaped on_stop: {exc!r}")
    assert made.notes() == ["scenario probes: 1 × Probe.on_stop raised SystemExit: 3"]
