"""The bad-input corpus (issue 10): every bad scenario file, ``--set`` value or flag is one line on
stderr naming the file and key (or the flag), with the documented exit code, before the target
is contacted — never a traceback, never a hang, never nonsense accepted.

Each case runs ``scfleet run`` (in-process, through :func:`scfleet.cli.main`) against a target
that refuses connections: a case the tool wrongly accepts ends in "cannot reach" (exit 103)
instead of the expected configuration error, so "nonsense accepted" fails the test. The
structured part is also explored by hypothesis: random values for every numeric key of the
schema (found from the config dataclasses, so it grows with the schema); set
``SCFLEET_FUZZ_EXAMPLES`` for a longer search than CI's 400 examples.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_bridge.boards_section import BoardsConfig, parse_boards
from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG, EXIT_USAGE, ConfigError
from simulator import config as C
from simulator.executors import arrival_offsets, vu_changes

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFUSED = "http://127.0.0.1:9"  # nothing listens: an accepted case fails with exit 103

BASE = """
[scenarios.a]
executor = "constant-arrival-rate"
rate = 10
duration = "2s"
pre_allocated_devices = 2
[scenarios.a.device]
kind = "iot_upload"
chunk_bytes = 64
"""
RAMP = """
[scenarios.a]
executor = "ramping-arrival-rate"
pre_allocated_devices = 2
stages = [{ duration = "1s", target = 10 }]
"""
VUS = """
[scenarios.a]
executor = "ramping-vus"
stages = [{ duration = "1s", target = 2 }]
"""
AI = BASE.replace('kind = "iot_upload"', 'kind = "ai_analysis"').replace("chunk_bytes = 64", "")
AUTH = BASE.replace('kind = "iot_upload"', 'kind = "auth_flow"').replace("chunk_bytes = 64", "")
BOARDS = BASE + '\n[boards]\nports = ["emulated:1"]\n'


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: a file (text or bytes), extra argv, the exit code, what stderr names."""

    id: str
    text: str | bytes = BASE
    argv: tuple[str, ...] = ()
    code: int = EXIT_INVALID_CONFIG
    names: str = ""  # the key or flag the one line must name ("" = the file only)
    target: bool = True  # pass --target to the refusing port


def s(key: str, value: str, base: str = BASE, names: str | None = None) -> Case:
    """A ``--set key=value`` case on a base file; the error must name the key."""
    return Case(f"{key}={value[:30]}", base, ("--set", f"{key}={value}"), names=names or key)


def file_case(id: str, text: str | bytes, names: str = "") -> Case:
    return Case(id, text, names=names)


SA = "scenarios.a"
DEV = "scenarios.a.device"
CASES: list[Case] = [
    # --- the file itself
    file_case("invalid-utf8", b"\xff\xfe[scenarios.a]\nexecutor = 1\n", "not UTF-8"),
    file_case("deep-arrays", "x = " + "[" * 20000 + "]" * 20000),
    file_case("deep-tables", "x = " + "{a = " * 5000 + "1" + "}" * 5000),
    file_case("nul-bytes", "[scenarios.a]\x00\x00"),
    file_case("empty", "", "scenarios"),
    file_case("scenarios-not-table", "scenarios = 3", "scenarios"),
    file_case("unknown-top-key", BASE + "\n[nonsense]\nx = 1\n", "nonsense"),
    file_case("scenario-name-space", BASE.replace("scenarios.a", '"scenarios"."a b"'), "a b"),
    file_case("scenario-name-slash", BASE.replace("scenarios.a", 'scenarios."../x"'), "../x"),
    file_case("scenario-name-long", BASE.replace("scenarios.a", "scenarios." + "n" * 100), "nnn"),
    file_case("huge-tag", BASE + f'\n[scenarios.a.tags]\nbig = "{"x" * 10_000_000}"\n', "tags.big"),
    file_case("header-euro", BASE + '\n[scenarios.a.device.headers]\nX-A = "5 €"\n', "X-A"),
    file_case("header-crlf", BASE + '[scenarios.a.device.headers]\nX-A = "a\\r\\nX-B: c"\n', "X-A"),
    file_case("header-name-space", BASE + '[scenarios.a.device.headers]\n"X A" = "1"\n', "X A"),
    file_case(
        "header-10mb", BASE + f'[scenarios.a.device.headers]\nX-A = "{"v" * 10_000_000}"\n', "X-A"
    ),
    file_case(
        "header-too-many",
        BASE + "[scenarios.a.device.headers]\n" + "".join(f'X-{i} = "v"\n' for i in range(200)),
        "headers",
    ),
    file_case("tag-newline", BASE + '[scenarios.a.tags]\nt = "a\\nb"\n', "tags.t"),
    file_case("tag-nan", BASE + "[scenarios.a.tags]\nt = nan\n", "tags.t"),
    # --- executor values
    s(f"{SA}.rate", "nan"),
    s(f"{SA}.rate", "inf"),
    s(f"{SA}.rate", "-inf"),
    s(f"{SA}.rate", "0"),
    s(f"{SA}.rate", "-1"),
    s(f"{SA}.rate", "true"),
    s(f"{SA}.rate", "'fast'"),
    s(f"{SA}.rate", "1e12"),
    s(f"{SA}.rate", "1e400"),
    s(f"{SA}.rate", "10" + "0" * 400),
    Case(
        "1e12-per-us",
        BASE,
        ("--set", f"{SA}.rate=1e12", "--set", f"{SA}.time_unit='1us'"),
        names=f"{SA}.rate",
    ),
    Case(
        "1-per-us",
        BASE,
        ("--set", f"{SA}.rate=1", "--set", f"{SA}.time_unit='1us'"),
        names=f"{SA}.rate",
    ),
    s(f"{SA}.time_unit", "nan"),
    s(f"{SA}.time_unit", "inf"),
    s(f"{SA}.time_unit", "'0s'"),
    s(f"{SA}.time_unit", "'-1s'"),
    s(f"{SA}.time_unit", "'1y'"),
    s(f"{SA}.time_unit", "'99999999999999999999h'"),
    s(f"{SA}.duration", "nan"),
    s(f"{SA}.duration", "inf"),
    s(f"{SA}.duration", "1e12"),
    s(f"{SA}.duration", "'1e9s'"),
    s(f"{SA}.duration", "'-5s'"),
    s(f"{SA}.duration", "''"),
    s(f"{SA}.duration", "'9' * 70"),
    s(f"{SA}.duration", "'" + "9" * 400 + "s'"),
    s(f"{SA}.graceful_stop", "inf"),
    s(f"{SA}.graceful_stop", "nan"),
    s(f"{SA}.graceful_stop", "1e9"),
    s(f"{SA}.start_time", "inf"),
    s(f"{SA}.start_time", "1e10"),
    s(f"{SA}.think_time", "nan"),
    s(f"{SA}.pre_allocated_devices", "1e9"),
    s(f"{SA}.pre_allocated_devices", "1000000000"),
    s(f"{SA}.pre_allocated_devices", "0"),
    s(f"{SA}.pre_allocated_devices", "nan"),
    s(f"{SA}.max_devices", "1000000000000"),
    s(f"{SA}.max_devices", "1"),
    s(f"{SA}.executor", "'warp-speed'"),
    s(f"{SA}.stages", "[]", RAMP),
    s(f"{SA}.stages", "[{duration='1s', target=1e12}]", RAMP, f"{SA}.stages[0].target"),
    s(f"{SA}.stages", "[{duration='1s', target=nan}]", RAMP, f"{SA}.stages[0].target"),
    s(f"{SA}.stages", "[{duration=inf, target=1}]", RAMP, f"{SA}.stages[0].duration"),
    s(f"{SA}.stages", "[{duration='6d', target=1}, {duration='6d', target=1}]", RAMP),
    s(f"{SA}.start_rate", "inf", RAMP),
    s(f"{SA}.stages", "[" + ",".join(["{duration='1s',target=1}"] * 2000) + "]", RAMP),
    s(f"{SA}.stages", "[{duration='1s', target=1.5}]", VUS, f"{SA}.stages[0].target"),
    s(f"{SA}.stages", "[{duration='1s', target=1e9}]", VUS, f"{SA}.stages[0].target"),
    s(f"{SA}.start_vus", "-1", VUS),
    s(f"{SA}.graceful_ramp_down", "inf", VUS),
    # --- device values
    s(f"{DEV}.chunk_bytes", "1e11"),
    s(f"{DEV}.chunk_bytes", "100000000000"),
    s(f"{DEV}.chunk_bytes", "3"),
    s(f"{DEV}.sample_rate", "0"),
    s(f"{DEV}.sample_rate", "1000000000"),
    s(f"{DEV}.id_pattern", "'设备-{n}'"),
    s(f"{DEV}.id_pattern", '"esp32-{n}\\r\\nX-Evil: 1"'),
    s(f"{DEV}.id_pattern", "'{x}'"),
    s(f"{DEV}.id_pattern", "'{n:>1000000000}'"),
    s(f"{DEV}.id_pattern", "'{0}'"),
    s(f"{DEV}.id_pattern", "''"),
    s(f"{DEV}.id_start", "-1"),
    s(f"{DEV}.id_start", str(2**60)),
    s(f"{DEV}.endpoint", "'api/x'"),
    s(f"{DEV}.endpoint", "'/a b'"),
    s(f"{DEV}.endpoint", '"/a\\r\\nHost: evil"'),
    s(f"{DEV}.endpoint", "'/€'"),
    s(f"{DEV}.kind", "'toaster'"),
    s(f"{DEV}.min_seconds", "inf", AI),
    s(f"{DEV}.max_seconds", "1e9", AI),
    s(f"{DEV}.max_seconds", "1", AI),
    s(f"{DEV}.filename", "'a\"b.wav'", AI),
    s(f"{DEV}.field", "'€'", AI),
    s(f"{DEV}.content_type", '"audio/wav\\r\\nX: 1"', AI),
    s(f"{DEV}.login_endpoint", "'login'", AUTH),
    s(f"{DEV}.body_format", "'xml'", AUTH),
    file_case(
        "check-status-9999", BASE + "[[scenarios.a.checks]]\nstatus = 9999\n", "checks[0].status"
    ),
    file_case(
        "check-status-bool", BASE + "[[scenarios.a.checks]]\nstatus = true\n", "checks[0].status"
    ),
    # --- run-wide sections
    Case(
        "target-url-ipv6",
        BASE + '[target]\nurl = "http://[::1"\n',
        names="target.url",
        target=False,
    ),
    Case("target-url-ftp", BASE + '[target]\nurl = "ftp://x"\n', names="target.url", target=False),
    Case(
        "target-url-port",
        BASE + '[target]\nurl = "http://x:99999"\n',
        names="target.url",
        target=False,
    ),
    Case(
        "target-url-space",
        BASE + '[target]\nurl = "http://a b"\n',
        names="target.url",
        target=False,
    ),
    s("target.timeout", "inf"),
    s("target.timeout", "0"),
    s("target.transport", "'h3'"),
    s("target.health_path", "'health'"),
    s("server.analysis_workers", "100000"),
    s("server.analysis_workers", "0"),
    s("server.extra_cost_ms", "inf"),
    s("server.max_upload_bytes", str(2**40)),
    s("server.accounts", "1000000000"),
    s("audio.seed", "-1"),
    s("audio.seed", str(2**64)),
    s("audio.profiles", "1000000"),
    s("audio.seconds", "inf"),
    s("audio.seconds", "0.001"),  # under the bank's 0.01: refused by the run, passed by inspect
    Case(  # 256 profiles x 300 s of PCM: over the memory budget
        "audio-pcm-budget",
        BASE,
        ("--set", "audio.profiles=256", "--set", "audio.seconds=300"),
        names="audio.seconds",
    ),
    s("audio.anomaly_probability", "nan"),
    s("audio.anomaly_probability", "2"),
    s("audio.snr_db", "nan"),
    s("audio.snr_db", "1000"),
    s("monitor.interval", "0"),
    s("monitor.interval", "inf"),
    s("monitor.server_pid", "-5"),
    s("monitor.server_pid", str(2**40)),
    s("monitor.prometheus_url", "'http://[::1'"),
    s("output.summary_trend_stats", "['p(abc)']"),
    s("output.summary_trend_stats", "[1]"),
    s("boards.ports", "['emulated:1000']", BOARDS),
    s("boards.rate", "nan", BOARDS),
    s("boards.baud", str(10**12), BOARDS),
    s("boards.device_id_pattern", "'设备{n}'", BOARDS),
    s("boards.silence", "inf", BOARDS),
    s("boards.wifi_key", "'hunter2'", BOARDS),
    # --- flags
    Case("--target-ipv6", argv=("--target", "http://[::1"), names="--target", target=False),
    Case("--target-ftp", argv=("--target", "ftp://x"), names="--target", target=False),
    Case("--time-scale-nan", argv=("--time-scale", "nan"), code=EXIT_USAGE, names="--time-scale"),
    Case("--time-scale-inf", argv=("--time-scale", "inf"), code=EXIT_USAGE, names="--time-scale"),
    Case("--time-scale-abc", argv=("--time-scale", "abc"), code=EXIT_USAGE, names="--time-scale"),
    Case("--time-scale-0", argv=("--time-scale", "0"), names="--time-scale"),
    Case("--time-scale--1", argv=("--time-scale=-1",), names="--time-scale"),
    Case("--time-scale-1e9", argv=("--time-scale", "1e9"), names="--time-scale"),
    Case("--server-pid--5", argv=("--server-pid=-5",), code=EXIT_USAGE, names="--server-pid"),
    Case("--server-pid-0", argv=("--server-pid", "0"), code=EXIT_USAGE, names="--server-pid"),
    Case(
        "--server-pid-huge", argv=("--server-pid", "9" * 30), code=EXIT_USAGE, names="--server-pid"
    ),
    Case("--set-no-equals", argv=("--set", "scenarios.a.rate"), code=EXIT_USAGE, names="--set"),
    Case("--set-empty-key", argv=("--set", "=1"), code=EXIT_USAGE, names="--set"),
    Case("--set-bad-key", argv=("--set", "a..b=1"), names="--set"),
    Case("--set-not-table", argv=("--set", f"{SA}.rate.x=1"), names="--set"),
    Case("--set-deep", argv=("--set", f"{SA}.rate=" + "[" * 5000), names=f"{SA}.rate"),
]


def _write(tmp: pathlib.Path, text: str | bytes) -> pathlib.Path:
    path = tmp / "bad.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _check(code: int, err: str, case: Case, cfg: pathlib.Path, out: pathlib.Path) -> None:
    assert "Traceback" not in err, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err[:2000]
    assert len(lines[0]) < 400, lines[0][:400]
    assert code == case.code, f"exit {code}: {lines[0]}"
    if case.code == EXIT_INVALID_CONFIG and not case.names.startswith("--"):
        assert str(cfg) in lines[0], lines[0]  # names the file
    assert case.names in lines[0], lines[0]
    assert not out.exists(), "a failure before the first request left a run folder"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_with_the_documented_code(
    case: Case, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _write(tmp_path, case.text)
    out = tmp_path / "run"
    argv = ["run", str(cfg), "--out", str(out), "--quiet", *case.argv]
    if case.target:
        argv += ["--target", REFUSED]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    _check(code, capsys.readouterr().err, case, cfg, out)


def test_the_corpus_is_large() -> None:
    assert len(CASES) + len(OUT_CASES) >= 100


OUT_CASES = ["existing-file", "under-a-file", "unwritable", "existing-run", "non-run-folder"]


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", OUT_CASES)
def test_out_folder_rules_through_the_real_cli(kind: str, tmp_path: pathlib.Path) -> None:
    """``--out`` naming a file, an impossible place, or an existing run: refused up front (a real
    ``scfleet run`` subprocess); an existing run is replaced only with ``--overwrite``."""
    cfg = _write(tmp_path, BASE)
    target = tmp_path / "out"
    if kind == "existing-file":
        target.write_text("precious")
    elif kind == "under-a-file":
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "run"
    elif kind == "unwritable":
        target = pathlib.Path("/proc/scfleet-nope/run")
    elif kind == "existing-run":
        target.mkdir()
        (target / "summary.json").write_text("{}")
    else:
        target.mkdir()
        (target / "thesis.tex").write_text("precious")
    args = [sys.executable, "-m", "scfleet", "run", str(cfg), "--out", str(target)]
    args += ["--quiet", "--target", REFUSED]
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert res.returncode == EXIT_INVALID_CONFIG, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scfleet: --out: "), res.stderr
    if kind == "existing-file":
        assert target.read_text() == "precious"
    if kind == "non-run-folder":
        assert (target / "thesis.tex").read_text() == "precious"
    if kind == "existing-run":
        assert "--overwrite" in lines[0]
        res = subprocess.run(
            [*args, "--overwrite"], cwd=ROOT, capture_output=True, text=True, timeout=50
        )
        # accepted now: it goes on to the (refusing) target, and fails there, not on --out
        assert res.returncode == 103 and "cannot reach" in res.stderr, res.stderr
        assert not target.exists()  # the old run was replaced; the failed one left nothing


# --------------------------------------------------------------------------- hypothesis


#: section → (base document, where the key goes) for every config dataclass with numbers.
def _base(kind: str) -> dict[str, Any]:
    ex: dict[str, Any] = {"executor": kind}
    if kind in ("constant-arrival-rate", "ramping-arrival-rate"):
        ex["pre_allocated_devices"] = 2
    if kind in ("constant-arrival-rate",):
        ex.update(rate=10, duration="2s")
    if kind in ("constant-vus",):
        ex.update(duration="2s")
    if kind in ("ramping-arrival-rate", "ramping-vus"):
        ex["stages"] = [{"duration": "1s", "target": 2}]
    return {"scenarios": {"a": {**ex, "device": {"kind": "iot_upload", "chunk_bytes": 64}}}}


SECTIONS: list[tuple[type, str]] = [
    (C.ConstantArrivalRate, "executor"),
    (C.RampingArrivalRate, "executor"),
    (C.ConstantVUs, "executor"),
    (C.RampingVUs, "executor"),
    (C.PerVUIterations, "executor"),
    (C.Stage, "stage"),
    (C.ScenarioConfig, "scenario"),
    (C.IotUploadDevice, "device"),
    (C.AnalyzeDevice, "device"),
    (C.AuthDevice, "device"),
    (C.TargetConfig, "target"),
    (C.EmbeddedServerConfig, "server"),
    (C.AudioConfig, "audio"),
    (C.MonitorConfig, "monitor"),
    (BoardsConfig, "boards"),
]
_NUMERIC = {"float", "int", "float | None", "int | None"}
KEYS = [
    (cls, f.name) for cls, _ in SECTIONS for f in dataclasses.fields(cls) if str(f.type) in _NUMERIC
]


def _place(cls: type, key: str, value: Any) -> dict[str, Any]:
    kinds = {
        C.ConstantArrivalRate: "constant-arrival-rate",
        C.RampingArrivalRate: "ramping-arrival-rate",
        C.ConstantVUs: "constant-vus",
        C.RampingVUs: "ramping-vus",
        C.PerVUIterations: "per-vu-iterations",
        C.Stage: "ramping-arrival-rate",
    }
    doc = _base(kinds.get(cls, "constant-arrival-rate"))
    sc = doc["scenarios"]["a"]
    section = dict(SECTIONS)[cls]
    if section == "executor" or section == "scenario":
        sc[key] = value
    elif section == "stage":
        sc["stages"][0][key] = value
    elif section == "device":
        kind = {C.AnalyzeDevice: "ai_analysis", C.AuthDevice: "auth_flow"}.get(cls, "iot_upload")
        sc["device"] = {"kind": kind, key: value}
    elif section == "boards":
        doc["boards"] = {"ports": ["emulated:1"], key: value}
    else:
        doc[section] = {key: value}
    return doc


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 1e9, 1e12, 1e-9, 1e308]),
)


def _walk_numbers(value: Any) -> list[float]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [n for f in dataclasses.fields(value) for n in _walk_numbers(getattr(value, f.name))]
    if isinstance(value, tuple):
        return [n for v in value for n in _walk_numbers(v)]
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    return []


def test_the_schema_has_numeric_keys() -> None:
    names = {k for _, k in KEYS}
    assert {"rate", "time_unit", "duration", "graceful_stop", "chunk_bytes"} <= names
    assert {"analysis_workers", "server_pid", "baud", "target"} <= names


@settings(
    max_examples=int(os.environ.get("SCFLEET_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.sampled_from(KEYS), NUMBERS)
def test_any_number_anywhere_is_a_clean_error_or_a_bounded_schedule(
    where: tuple[type, str], value: Any
) -> None:
    cls, key = where
    doc = _place(cls, key, value)
    try:
        cfg = C.parse_config(doc, "fuzz.toml")
        boards = parse_boards(cfg)  # the engine carries [boards]; hw_bridge reads it
    except ConfigError as exc:
        text = str(exc)
        assert text.startswith("fuzz.toml: ") and "\n" not in text and len(text) < 400
        return
    for n in _walk_numbers(cfg) + _walk_numbers(boards):
        assert math.isfinite(n) and abs(n) <= 2**53, (key, value, n)
    for sc in cfg.scenarios:
        ex = sc.executor
        assert C.executor_duration(ex) <= C.MAX_DURATION
        assert sc.graceful_stop <= C.MAX_WAIT and sc.start_time <= C.MAX_DURATION
        if isinstance(ex, C.ConstantArrivalRate | C.RampingArrivalRate):
            assert ex.max_devices <= C.MAX_DEVICES
            peak = max(
                [ex.rate]
                if isinstance(ex, C.ConstantArrivalRate)
                else [ex.start_rate, *(s.target for s in ex.stages)]
            )
            assert peak / ex.time_unit <= C.MAX_RATE
            offsets = list(itertools.islice(arrival_offsets(ex), 1000))  # lazy and finite
            assert all(math.isfinite(o) for o in offsets)
        else:
            if not isinstance(ex, C.PerVUIterations):
                assert max(n for _, n in vu_changes(ex)) <= C.MAX_DEVICES


def test_a_scenario_may_hold_a_million_devices_and_no_more(tmp_path: pathlib.Path) -> None:
    """The per-scenario cap was 100,000 devices (the bad-input bound), so 1,000,000 idle
    devices had to be 10 copies of one scenario; it is now 1,000,000 (~0.2 KiB each in a
    worker, devices.csv streamed), and more is still a one-line error naming the key."""
    body = (
        '[scenarios.idle]\nexecutor = "constant-arrival-rate"\nrate = 1\nduration = "1s"\n'
        'pre_allocated_devices = {n}\n[scenarios.idle.device]\nkind = "iot_upload"\n'
    )
    ok = tmp_path / "ok.toml"
    ok.write_text(body.format(n=1_000_000))
    (sc,) = C.load_config(str(ok)).scenarios
    assert sc.executor.device_bound() == 1_000_000
    bad = tmp_path / "bad.toml"
    bad.write_text(body.format(n=1_000_001))
    with pytest.raises(ConfigError) as err:
        C.load_config(str(bad))
    msg = str(err.value)
    assert "\n" not in msg and "pre_allocated_devices" in msg and "1000000" in msg
