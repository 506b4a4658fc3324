"""Scenario files (TOML, k6's vocabulary) parsed into typed, validated values.

Everything past :func:`load_config` is a frozen dataclass; raw dicts never leave this module.
Errors are :class:`ConfigError` naming the file and the dotted key, e.g.
``configs/x.toml: scenarios.up.rate: expected a positive number, got -1``.
"""

from __future__ import annotations

import math
import os
import re
import string
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from scfleet_core.errors import ConfigError
from simulator.durations import parse_duration
from simulator.executors import EXECUTOR_KINDS
from simulator.executors import ConstantArrivalRate as ConstantArrivalRate
from simulator.executors import ConstantVUs as ConstantVUs
from simulator.executors import ExecutorConfig as ExecutorConfig
from simulator.executors import PerVUIterations as PerVUIterations
from simulator.executors import RampingArrivalRate as RampingArrivalRate
from simulator.executors import RampingVUs as RampingVUs
from simulator.executors import Stage as Stage
from simulator.executors import executor_duration as executor_duration
from simulator.thresholds import (
    Threshold,
    parse_expression,
    parse_metric_key,
    validate_thresholds,
)

# --------------------------------------------------------------------------- bounds
# Every value is bounded at parse time, so no schedule can ask for unbounded work or memory
# (issue 10: `target = 1e12` with `time_unit = "1us"` hung the generator).
MAX_DURATION = 7 * 86400.0  # a week: durations, start times
MAX_WAIT = 86400.0  # graceful stops, think time, timeouts
MAX_RATE = 100_000.0  # iterations/s per scenario (rate / time_unit, stage targets)
MAX_DEVICES = 100_000  # devices (VUs) per scenario
MAX_ITERATIONS = 10_000_000  # per-vu-iterations, per device
MAX_STAGES = 1000
MAX_CHUNK_BYTES = 16 << 20
MAX_SAMPLE_RATE = 384_000
MAX_ANALYSIS_SECONDS = 600.0
MAX_TEXT = 1024  # tag values, field values
MAX_HEADER_VALUE = 8192
MAX_MAP_ITEMS = 100  # tags, headers, extra fields
MAX_PID = 1 << 22  # Linux pid_max limit
MAX_FILE_BYTES = 16 << 20  # a scenario file
SCENARIO_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # k6's rule for scenario names
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters except tab
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # an HTTP header name
_PATH = re.compile(r"/[!-~]{0,2047}")  # a request path: printable ASCII, no spaces

# --------------------------------------------------------------------------- executors


# Executor specs live in simulator.executors, one module per kind, each answering for itself.
EXECUTORS = tuple(EXECUTOR_KINDS)


# --------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Check:
    """A k6 ``check()`` declared in the config; every clause given must hold."""

    name: str
    status: tuple[int, ...] = ()
    json_has: tuple[str, ...] = ()
    json_equals: tuple[tuple[str, Any], ...] = ()
    body_min_bytes: int | None = None
    body_max_bytes: int | None = None


@dataclass(frozen=True)
class IotUploadDevice:
    """Scenario 2: raw PCM POSTed with the ESP32 firmware's headers."""

    endpoint: str = "/api/esp32/audio/upload"
    id_pattern: str = "esp32-{n:06d}"
    id_start: int = 1
    chunk_bytes: int = 32000
    sample_rate: int = 16000
    keep_alive: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    kind: Literal["iot_upload"] = "iot_upload"
    #: boards upload like this device kind (``[boards] scenario`` must name one)
    boards_follow: ClassVar[bool] = True
    needs_accounts: ClassVar[bool] = False

    def audio_bytes(self) -> int:
        """Largest PCM slice one request asks of the audio bank."""
        return self.chunk_bytes

    def audio_sample_rate(self) -> int | None:
        return self.sample_rate


@dataclass(frozen=True)
class AnalyzeDevice:
    """Scenario 1: a WAV file in a multipart form field."""

    endpoint: str = "/api/lightweight-analyze"
    id_pattern: str = "esp32-{n:06d}"
    id_start: int = 1
    field: str = "audio"
    filename: str = "test.wav"
    content_type: str = "audio/wav"
    min_seconds: float = 3.0
    max_seconds: float = 15.0
    sample_rate: int = 16000
    keep_alive: bool = True
    extra_fields: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    kind: Literal["ai_analysis"] = "ai_analysis"
    boards_follow: ClassVar[bool] = False
    needs_accounts: ClassVar[bool] = False

    def audio_bytes(self) -> int:
        """Largest PCM slice one request asks of the audio bank (a WAV of max_seconds)."""
        return int(self.max_seconds * self.sample_rate) * 2 + 2

    def audio_sample_rate(self) -> int | None:
        return self.sample_rate


@dataclass(frozen=True)
class AuthDevice:
    """Scenario 3: log in once, keep the cookie jar, verify periodically."""

    accounts_csv: Path | None = None
    login_endpoint: str = "/api/auth/login"
    verify_endpoint: str = "/api/auth/verify"
    body_format: Literal["json", "form"] = "json"
    username_field: str = "username"
    password_field: str = "password"
    id_pattern: str = "esp32-{n:06d}"
    id_start: int = 1
    keep_alive: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    kind: Literal["auth_flow"] = "auth_flow"
    boards_follow: ClassVar[bool] = False
    #: logs in with accounts (seeded by the embedded server or read from accounts_csv)
    needs_accounts: ClassVar[bool] = True

    def audio_bytes(self) -> int:
        return 0

    def audio_sample_rate(self) -> int | None:
        return None


DeviceConfig = IotUploadDevice | AnalyzeDevice | AuthDevice
DEVICE_KINDS = ("iot_upload", "ai_analysis", "auth_flow")


@dataclass(frozen=True)
class ScenarioConfig:
    name: str
    executor: ExecutorConfig
    device: DeviceConfig
    start_time: float = 0.0
    graceful_stop: float = 30.0
    think_time: float = 0.0
    tags: tuple[tuple[str, str], ...] = ()
    checks: tuple[Check, ...] = ()


# --------------------------------------------------------------------------- run-wide


@dataclass(frozen=True)
class TargetConfig:
    url: str | None = None  # None: start the embedded reference server
    timeout: float = 30.0
    health_path: str = "/health"
    transport: Literal["fast", "aiohttp"] = "fast"


@dataclass(frozen=True)
class EmbeddedServerConfig:
    analysis_workers: int = 2
    extra_cost_ms: float = 0.0
    max_upload_bytes: int = 10 * 1024 * 1024
    accounts: int = 0
    header_timeout: float = 15.0  # the server's request-head and body deadlines, seconds
    body_timeout: float = 60.0
    max_connections: int = 0  # 0: what the server's descriptor limit allows


@dataclass(frozen=True)
class AudioConfig:
    seed: int = 1
    profiles: int = 16
    seconds: float = 30.0
    anomaly_probability: float = 0.05
    snr_db: float = 6.0


@dataclass(frozen=True)
class MonitorConfig:
    interval: float = 1.0
    prometheus_url: str | None = None
    server_pid: int | None = None


@dataclass(frozen=True)
class OutputConfig:
    summary_trend_stats: tuple[str, ...] = ("avg", "min", "med", "max", "p(90)", "p(95)")  # k6's
    out_dir: str | None = None


@dataclass(frozen=True)
class BoardsConfig:
    """``[boards]``: ESP32 boards (real or emulated) joining the run as ``kind=physical``.

    Each board follows one iot_upload scenario's schedule (start time, duration) at ``rate``
    uploads/s, by default that scenario's mean rate per pre-allocated device (hw_bridge.fleet).
    """

    ports: tuple[str, ...] = ()  # paths, stable names, auto, socket://, rfc2217://, emulated:N
    registry: Path | None = None  # boards.toml: board -> device ID
    scenario: str = ""  # the iot_upload scenario followed ("" = the first one)
    rate: float | None = None  # uploads/s per board; None = the scenario's per-device share
    device_id_pattern: str = "esp32-hw-{n:03d}"  # boards the registry does not name
    target: str | None = None  # base URL the boards upload to (default: the run's target)
    wifi_ssid: str = ""
    wifi_key_env: str | None = None  # the key comes from this environment variable...
    wifi_key_file: Path | None = None  # ...or this file; never from the scenario file
    emulator_protocol: Literal["socket", "rfc2217"] = "socket"
    silence: float = 5.0  # no line for this long: ask `status`
    status_timeout: float = 2.0  # no answer to it either: the board is lost
    baud: int = 115200


@dataclass(frozen=True)
class RunConfig:
    source: str
    scenarios: tuple[ScenarioConfig, ...]
    thresholds: tuple[Threshold, ...] = ()
    target: TargetConfig = field(default_factory=TargetConfig)
    server: EmbeddedServerConfig = field(default_factory=EmbeddedServerConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    boards: BoardsConfig | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def total_duration(self) -> float:
        """Scheduled length of the whole run (without graceful stops)."""
        return max(
            (s.start_time + executor_duration(s.executor) for s in self.scenarios), default=0
        )


# --------------------------------------------------------------------------- parsing


class _Table:
    """A TOML table being read: remembers the key path and which keys were used."""

    def __init__(self, data: Mapping[str, Any], path: str, source: str):
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a table, got {_show(data)}", source=source, key=path)
        self.data = data
        self.path = path
        self.source = source
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, key=self.key(name))

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def require(self, name: str) -> Any:
        self.used.add(name)
        if name not in self.data:
            raise ConfigError("is required", source=self.source, key=self.key(name))
        return self.data[name]

    def sub(self, name: str) -> _Table:
        self.used.add(name)
        return _Table(self.data.get(name, {}), self.key(name), self.source)

    def number(
        self,
        name: str,
        default: float | None = None,
        *,
        minimum: float = 0.0,
        maximum: float = 1e9,
        positive: bool = False,
        required: bool = False,
    ) -> float:
        raw = self.require(name) if required else self.get(name, default)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.error(name, f"expected a number, got {_show(raw)}")
        if isinstance(raw, float) and not math.isfinite(raw):
            raise self.error(name, f"expected a finite number, got {_show(raw)}")
        if positive and raw <= 0:
            raise self.error(name, f"expected a positive number, got {_show(raw)}")
        if raw < minimum:
            raise self.error(name, f"expected a number >= {minimum:g}, got {_show(raw)}")
        if raw > maximum:
            raise self.error(name, f"expected a number <= {maximum:g}, got {_show(raw)}")
        return float(raw)

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int = 0,
        maximum: int = 1 << 53,
        required: bool = False,
    ) -> int:
        raw = self.require(name) if required else self.get(name, default)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise self.error(name, f"expected a whole number, got {_show(raw)}")
        if raw < minimum:
            raise self.error(name, f"expected a whole number >= {minimum}, got {_show(raw)}")
        if raw > maximum:
            raise self.error(name, f"expected a whole number <= {maximum}, got {_show(raw)}")
        return raw

    def duration(
        self,
        name: str,
        default: float | str | None = None,
        *,
        required: bool = False,
        positive: bool = False,
        maximum: float = MAX_DURATION,
    ) -> float:
        raw = self.require(name) if required else self.get(name, default)
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None
        if positive and value <= 0:
            raise self.error(name, f"expected a duration > 0, got {_show(raw)}")
        if value > maximum:
            raise self.error(name, f"expected at most {maximum:g}s, got {_show(raw)}")
        return value

    def string(
        self,
        name: str,
        default: str | None = None,
        *,
        required: bool = False,
        max_len: int = MAX_TEXT,
        latin1: bool = False,
    ) -> str:
        """A string without control characters (CR/LF would be sent raw on the wire); with
        ``latin1`` it must also be encodable in an HTTP header."""
        raw = self.require(name) if required else self.get(name, default)
        if not isinstance(raw, str):
            raise self.error(name, f"expected a string, got {_show(raw)}")
        problem = _text_problem(raw, max_len, latin1)
        if problem:
            raise self.error(name, problem)
        return raw

    def request_path(self, name: str, default: str) -> str:
        """A request path: starts with '/', printable ASCII without spaces."""
        raw = self.string(name, default, max_len=2048)
        if not _PATH.fullmatch(raw):
            raise self.error(
                name, f"expected a path like '/api/x' (ASCII, no spaces), got {_show(raw)}"
            )
        return raw

    def optional_string(self, name: str) -> str | None:
        raw = self.get(name)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise self.error(name, f"expected a string, got {_show(raw)}")
        problem = _text_problem(raw, 4096, False)
        if problem:
            raise self.error(name, problem)
        return raw

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.get(name, default)
        if not isinstance(raw, bool):
            raise self.error(name, f"expected true or false, got {_show(raw)}")
        return raw

    def choice(self, name: str, options: Sequence[str], default: str | None = None) -> str:
        raw = self.string(name, default, required=default is None)
        if raw not in options:
            raise self.error(name, f"unknown value {raw!r}; expected one of: {', '.join(options)}")
        return raw

    def string_map(
        self, name: str, *, header: bool = False, max_len: int = MAX_TEXT
    ) -> tuple[tuple[str, str], ...]:
        """A table of short strings (tags, form fields); ``header``: names are HTTP tokens and
        values latin-1, since they are sent as request headers."""
        raw = self.get(name, {})
        if not isinstance(raw, Mapping):
            raise self.error(name, f"expected a table of strings, got {_show(raw)}")
        if len(raw) > MAX_MAP_ITEMS:
            raise self.error(name, f"at most {MAX_MAP_ITEMS} entries, got {len(raw)}")
        out = []
        for k, v in raw.items():
            where = f"{self.key(name)}.{_show(k)[1:-1] if _CONTROL.search(k) else k}"
            if not isinstance(v, str | int | float) or isinstance(v, bool):
                raise ConfigError(
                    f"expected a string, got {_show(v)}", source=self.source, key=where
                )
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(
                    f"expected a string, got {_show(v)}", source=self.source, key=where
                )
            if header and not _TOKEN.fullmatch(k):
                raise ConfigError(
                    "not a valid header name (letters, digits and !#$%&'*+.^_`|~-)",
                    source=self.source,
                    key=where,
                )
            problem = _text_problem(k, 256, header) or _text_problem(str(v), max_len, header)
            if problem:
                raise ConfigError(problem, source=self.source, key=where)
            out.append((str(k), str(v)))
        return tuple(out)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _text_problem(text: str, max_len: int, latin1: bool) -> str | None:
    """Why ``text`` cannot be used as a config string, or None."""
    if len(text) > max_len:
        return f"too long ({len(text)} characters, at most {max_len})"
    bad = _CONTROL.search(text)
    if bad:
        return f"must not contain control characters such as CR or LF (found {bad.group()!r})"
    if latin1:
        try:
            text.encode("latin-1")
        except UnicodeEncodeError as exc:
            return f"{text[exc.start]!r} cannot be sent in an HTTP header (latin-1 only)"
    return None


def _id_pattern(t: _Table, name: str, default: str, first: int, count: int) -> str:
    """A device ID pattern whose IDs (sent as an HTTP header) are short latin-1 text."""
    pattern = t.string(name, default, max_len=256, latin1=True)
    try:
        specs = [spec for _, _, spec, _ in string.Formatter().parse(pattern) if spec]
        if any(int(w) > 64 for spec in specs for w in re.findall(r"\d+", spec)):
            raise ValueError("field width over 64")
        ids = [pattern.format(n=first), pattern.format(n=first + max(count - 1, 0))]
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise t.error(name, f"bad pattern ({exc}); use e.g. 'esp32-{{n:06d}}'") from None
    for dev_id in ids:
        problem = _text_problem(dev_id, 128, True) or ("is empty" if not dev_id else None)
        if problem:
            raise t.error(name, f"device ID {_show(dev_id)}: {problem}")
    return pattern


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _stages(t: _Table, name: str = "stages", target_max: float = 1e9) -> tuple[Stage, ...]:
    raw = t.require(name)
    if not isinstance(raw, list) or not raw:
        raise t.error(name, "expected a non-empty list of {duration, target} tables")
    if len(raw) > MAX_STAGES:
        raise t.error(name, f"at most {MAX_STAGES} stages, got {len(raw)}")
    out = []
    for i, item in enumerate(raw):
        st = _Table(item, f"{t.key(name)}[{i}]", t.source)
        out.append(
            Stage(
                st.duration("duration", required=True),
                st.number("target", required=True, maximum=target_max),
            )
        )
        st.finish()
    if sum(s.duration for s in out) > MAX_DURATION:
        raise t.error(
            name, f"stages last {sum(s.duration for s in out):g}s, at most {MAX_DURATION:g}s"
        )
    return tuple(out)


def _per_second(t: _Table, name: str, value: float, time_unit: float) -> None:
    """An arrival rate per time unit must stay within MAX_RATE iterations per second."""
    if value / time_unit > MAX_RATE:
        raise t.error(
            name,
            f"{value:g} per {time_unit:g}s is {value / time_unit:.3g} iterations/s; "
            f"at most {MAX_RATE:g}/s per scenario",
        )


def _arrival_common(t: _Table) -> tuple[float, int, int]:
    time_unit = t.duration("time_unit", "1s", positive=True, maximum=MAX_WAIT)
    pre = t.integer("pre_allocated_devices", required=True, minimum=1, maximum=MAX_DEVICES)
    mx = t.integer("max_devices", pre, minimum=1, maximum=MAX_DEVICES)
    if mx < pre:
        raise t.error("max_devices", f"must be >= pre_allocated_devices ({pre}), got {mx}")
    return time_unit, pre, mx


def _constant_arrival_rate(t: _Table) -> ExecutorConfig:
    time_unit, pre, mx = _arrival_common(t)
    rate = t.number("rate", required=True, positive=True)
    _per_second(t, "rate", rate, time_unit)
    return ConstantArrivalRate(
        rate,
        time_unit,
        t.duration("duration", required=True, positive=True),
        pre,
        mx,
    )


def _ramping_arrival_rate(t: _Table) -> ExecutorConfig:
    time_unit, pre, mx = _arrival_common(t)
    start_rate = t.number("start_rate", 0.0)
    _per_second(t, "start_rate", start_rate, time_unit)
    stages = _stages(t)
    for i, st in enumerate(stages):
        _per_second(t, f"stages[{i}].target", st.target, time_unit)
    return RampingArrivalRate(start_rate, time_unit, stages, pre, mx)


def _constant_vus(t: _Table) -> ExecutorConfig:
    return ConstantVUs(
        t.integer("vus", 1, minimum=1, maximum=MAX_DEVICES),
        t.duration("duration", required=True, positive=True),
    )


def _ramping_vus(t: _Table) -> ExecutorConfig:
    stages = _stages(t, target_max=MAX_DEVICES)
    for i, s in enumerate(stages):
        if s.target != int(s.target):
            raise ConfigError(
                "target must be a whole number of VUs",
                source=t.source,
                key=f"{t.key('stages')}[{i}].target",
            )
    return RampingVUs(
        t.integer("start_vus", 1, maximum=MAX_DEVICES),
        stages,
        t.duration("graceful_ramp_down", "30s", maximum=MAX_WAIT),
    )


def _per_vu_iterations(t: _Table) -> ExecutorConfig:
    return PerVUIterations(
        t.integer("vus", 1, minimum=1, maximum=MAX_DEVICES),
        t.integer("iterations", 1, minimum=1, maximum=MAX_ITERATIONS),
        t.duration("max_duration", "10m", positive=True),
    )


#: executor kind -> the reader of its section
_EXECUTOR_READERS: dict[str, Callable[[_Table], ExecutorConfig]] = {
    ConstantArrivalRate.kind: _constant_arrival_rate,
    RampingArrivalRate.kind: _ramping_arrival_rate,
    ConstantVUs.kind: _constant_vus,
    RampingVUs.kind: _ramping_vus,
    PerVUIterations.kind: _per_vu_iterations,
}


def _executor(t: _Table) -> ExecutorConfig:
    return _EXECUTOR_READERS[t.choice("executor", EXECUTORS)](t)


def _iot_upload(t: _Table, common: dict[str, Any]) -> DeviceConfig:
    chunk = t.integer("chunk_bytes", 32000, minimum=2, maximum=MAX_CHUNK_BYTES)
    if chunk % 2:
        raise t.error("chunk_bytes", f"must be even (16-bit samples), got {chunk}")
    return IotUploadDevice(
        endpoint=t.request_path("endpoint", IotUploadDevice.endpoint),
        chunk_bytes=chunk,
        sample_rate=t.integer("sample_rate", 16000, minimum=1, maximum=MAX_SAMPLE_RATE),
        **common,
    )


def _ai_analysis(t: _Table, common: dict[str, Any]) -> DeviceConfig:
    lo = t.number("min_seconds", 3.0, positive=True, maximum=MAX_ANALYSIS_SECONDS)
    hi = t.number("max_seconds", 15.0, positive=True, maximum=MAX_ANALYSIS_SECONDS)
    if hi < lo:
        raise t.error("max_seconds", f"must be >= min_seconds ({lo:g}), got {hi:g}")
    for name in ("field", "filename"):
        if '"' in str(t.data.get(name, "")):
            raise t.error(name, "must not contain '\"' (it is quoted in a part header)")
    return AnalyzeDevice(
        endpoint=t.request_path("endpoint", AnalyzeDevice.endpoint),
        field=t.string("field", "audio", max_len=256, latin1=True),
        filename=t.string("filename", "test.wav", max_len=256, latin1=True),
        content_type=t.string("content_type", "audio/wav", max_len=256, latin1=True),
        min_seconds=lo,
        max_seconds=hi,
        sample_rate=t.integer("sample_rate", 16000, minimum=1, maximum=MAX_SAMPLE_RATE),
        extra_fields=t.string_map("extra_fields"),
        **common,
    )


def _auth_flow(t: _Table, common: dict[str, Any]) -> DeviceConfig:
    csv = t.optional_string("accounts_csv")
    fmt = t.choice("body_format", ("json", "form"), "json")
    return AuthDevice(
        accounts_csv=_resolve(csv, t.source) if csv else None,
        login_endpoint=t.request_path("login_endpoint", AuthDevice.login_endpoint),
        verify_endpoint=t.request_path("verify_endpoint", AuthDevice.verify_endpoint),
        body_format="form" if fmt == "form" else "json",
        username_field=t.string("username_field", "username", max_len=256),
        password_field=t.string("password_field", "password", max_len=256),
        **common,
    )


#: device kind -> the reader of its section (``common``: the keys every kind has)
_DEVICE_READERS: dict[str, Callable[[_Table, dict[str, Any]], DeviceConfig]] = {
    IotUploadDevice.kind: _iot_upload,
    AnalyzeDevice.kind: _ai_analysis,
    AuthDevice.kind: _auth_flow,
}


def _device(t: _Table, default_kind: str, devices: int = 1) -> DeviceConfig:
    kind = t.choice("kind", DEVICE_KINDS, default_kind)
    id_start = t.integer("id_start", 1, maximum=1 << 48)
    common: dict[str, Any] = dict(
        id_pattern=_id_pattern(t, "id_pattern", "esp32-{n:06d}", id_start, devices),
        id_start=id_start,
        keep_alive=t.boolean("keep_alive", True),
        headers=t.string_map("headers", header=True, max_len=MAX_HEADER_VALUE),
    )
    dev = _DEVICE_READERS[kind](t, common)
    t.finish()
    return dev


def _resolve(path: str, source: str) -> Path:
    p = Path(path)
    if not p.is_absolute() and source and Path(source).exists():
        cand = Path(source).parent / p
        if cand.exists() or not p.exists():
            return cand
    return p


def _checks(t: _Table) -> tuple[Check, ...]:
    raw = t.get("checks", [])
    if not isinstance(raw, list):
        raise t.error("checks", "expected a list of tables ([[scenarios.NAME.checks]])")
    out = []
    for i, item in enumerate(raw):
        c = _Table(item, f"{t.key('checks')}[{i}]", t.source)
        status = c.get("status", None)
        if status is None:
            statuses: tuple[int, ...] = ()
        elif isinstance(status, int) and not isinstance(status, bool):
            statuses = (status,)
        elif isinstance(status, list) and all(
            isinstance(s, int) and not isinstance(s, bool) for s in status
        ):
            statuses = tuple(status)
        else:
            raise c.error(
                "status", f"expected a status code or a list of them, got {_show(status)}"
            )
        if any(not 100 <= s <= 599 for s in statuses):
            raise c.error("status", f"expected HTTP status codes 100..599, got {_show(status)}")
        has = c.get("json_has", [])
        if isinstance(has, str):
            has = [has]
        if not isinstance(has, list) or not all(isinstance(h, str) for h in has):
            raise c.error("json_has", "expected a field name or a list of them")
        eq = c.get("json_equals", {})
        if not isinstance(eq, Mapping):
            raise c.error("json_equals", "expected a table of field = value")
        bmin = c.get("body_min_bytes")
        bmax = c.get("body_max_bytes")
        for key, val in (("body_min_bytes", bmin), ("body_max_bytes", bmax)):
            if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 0):
                raise c.error(key, f"expected a whole number of bytes, got {_show(val)}")
        name = c.string("name", "")
        if not name:
            parts = [f"status in {list(statuses)}" if statuses else "", *(f"has {h}" for h in has)]
            name = ", ".join(p for p in parts if p) or f"check {i + 1}"
        c.finish()
        out.append(Check(name, statuses, tuple(has), tuple(eq.items()), bmin, bmax))
    return tuple(out)


def _scenario(name: str, t: _Table) -> ScenarioConfig:
    executor = _executor(t)
    default_kind = (
        "auth_flow" if "auth" in name else "ai_analysis" if "analy" in name else "iot_upload"
    )
    devices = executor.device_bound()
    sc = ScenarioConfig(
        name=name,
        executor=executor,
        device=_device(t.sub("device"), default_kind, devices),
        start_time=t.duration("start_time", 0.0),
        graceful_stop=t.duration("graceful_stop", "30s", maximum=MAX_WAIT),
        think_time=t.duration("think_time", 0.0, maximum=MAX_WAIT),
        tags=t.string_map("tags"),
        checks=_checks(t),
    )
    t.finish()
    return sc


def _thresholds(t: _Table) -> tuple[Threshold, ...]:
    out = []
    for key, spec in t.data.items():
        t.used.add(key)
        try:
            metric, tags = parse_metric_key(key)
        except ValueError as exc:
            raise t.error(f'"{key}"', str(exc)) from None
        items = spec if isinstance(spec, list) else [spec]
        for i, item in enumerate(items):
            where = f'"{key}"[{i}]'
            abort, delay = False, 0.0
            if isinstance(item, Mapping):
                it = _Table(item, t.key(where), t.source)
                expr_text = it.string("threshold", required=True)
                abort = it.boolean("abort_on_fail", False)
                delay = it.duration("delay_abort_eval", 0.0)
                it.finish()
            else:
                expr_text = item
            try:
                expr = parse_expression(expr_text)
            except ValueError as exc:
                raise t.error(where, str(exc)) from None
            out.append(Threshold(key, metric, tags, expr, abort, delay))
    return tuple(out)


def _target(t: _Table) -> TargetConfig:
    url = t.optional_string("url")
    if url is not None:
        url = validate_url(url, source=t.source, key=t.key("url"))
    tc = TargetConfig(
        url=url,
        timeout=t.duration("timeout", "30s", positive=True, maximum=MAX_WAIT),
        health_path=t.request_path("health_path", "/health"),
        transport="aiohttp"
        if t.choice("transport", ("fast", "aiohttp"), "fast") == "aiohttp"
        else "fast",
    )
    t.finish()
    return tc


def validate_url(url: str, *, source: str | None = None, key: str | None = None) -> str:
    """An http(s) base URL with a host; trailing slash removed."""
    try:
        parts = urlsplit(url)
        bad = _CONTROL.search(url) or " " in url or len(url) > 2048
    except ValueError:  # e.g. 'http://[::1' (unterminated IPv6 literal)
        raise ConfigError(f"not a valid URL: {_show(url)}", source=source, key=key) from None
    if bad or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"expected a URL like http://127.0.0.1:8080, got {_show(url)}", source=source, key=key
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"bad port in URL {_show(url)}", source=source, key=key) from None
    return url.rstrip("/")


def _server(t: _Table) -> EmbeddedServerConfig:
    sc = EmbeddedServerConfig(
        analysis_workers=t.integer("analysis_workers", 2, minimum=1, maximum=64),
        extra_cost_ms=t.number("extra_cost_ms", 0.0, maximum=60_000),
        max_upload_bytes=t.integer(
            "max_upload_bytes", 10 * 1024 * 1024, minimum=1, maximum=1 << 30
        ),
        accounts=t.integer("accounts", 0, maximum=MAX_DEVICES),
        header_timeout=t.duration("header_timeout", "15s", positive=True, maximum=MAX_WAIT),
        body_timeout=t.duration("body_timeout", "60s", positive=True, maximum=MAX_WAIT),
        max_connections=t.integer("max_connections", 0, maximum=1_000_000),
    )
    t.finish()
    return sc


def _audio(t: _Table) -> AudioConfig:
    ac = AudioConfig(
        seed=t.integer("seed", 1, maximum=(1 << 32) - 1),
        profiles=t.integer("profiles", 16, minimum=1, maximum=256),
        seconds=t.number("seconds", 30.0, positive=True, maximum=600),
        anomaly_probability=t.number("anomaly_probability", 0.05),
        snr_db=t.number("snr_db", 6.0, minimum=-60, maximum=60),
    )
    if ac.profiles * ac.seconds > 16 * 600:  # ~300 MB of PCM at 16 kHz
        raise t.error(
            "seconds", f"profiles x seconds is at most {16 * 600}, got {ac.profiles * ac.seconds:g}"
        )
    if ac.anomaly_probability > 1:
        raise t.error("anomaly_probability", f"expected 0..1, got {ac.anomaly_probability:g}")
    t.finish()
    return ac


def _monitor(t: _Table) -> MonitorConfig:
    prom = t.optional_string("prometheus_url")
    if prom is not None:
        validate_url(prom, source=t.source, key=t.key("prometheus_url"))
    pid = t.get("server_pid")
    if pid is not None and (
        not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID
    ):
        raise t.error("server_pid", f"expected a process id, got {_show(pid)}")
    mc = MonitorConfig(
        interval=t.duration("interval", "1s", positive=True, maximum=3600),
        prometheus_url=prom,
        server_pid=pid,
    )
    t.finish()
    return mc


def _output(t: _Table) -> OutputConfig:
    stats = t.get("summary_trend_stats", list(OutputConfig.summary_trend_stats))
    if not isinstance(stats, list) or len(stats) > 50:
        raise t.error("summary_trend_stats", "expected a list like ['avg', 'p(95)']")
    for s in stats:
        if not isinstance(s, str) or len(s) > 16:
            raise t.error("summary_trend_stats", f"unknown statistic {_show(s)}")
        try:
            parse_expression(f"{s}<1")
        except ValueError:
            raise t.error("summary_trend_stats", f"unknown statistic {s!r}") from None
    oc = OutputConfig(summary_trend_stats=tuple(stats), out_dir=t.optional_string("out_dir"))
    t.finish()
    return oc


def _boards(t: _Table, scenarios: Sequence[ScenarioConfig]) -> BoardsConfig:
    raw_ports = t.get("ports", [])
    if (
        not isinstance(raw_ports, list)
        or len(raw_ports) > 256
        or not all(
            isinstance(p, str) and p and not _text_problem(p, 1024, False) for p in raw_ports
        )
    ):
        raise t.error("ports", 'expected a list of ports, e.g. ["emulated:4", "/dev/ttyUSB0"]')
    for p in raw_ports:
        if p.startswith("emulated:"):
            n = p.removeprefix("emulated:")
            if not n.isdigit() or not 1 <= int(n) <= 64:
                raise t.error("ports", f"{p!r}: expected emulated:N with N in 1..64")
    registry = t.optional_string("registry")
    if not raw_ports and registry is None:
        raise t.error("ports", "give ports, a registry file, or both")
    name = t.string("scenario", "")
    iot = [s for s in scenarios if s.device.boards_follow]
    chosen = next((s for s in iot if s.name == name), None) if name else (iot[0] if iot else None)
    if chosen is None:
        what = f"no iot_upload scenario named {name!r}" if name else "no iot_upload scenario"
        raise t.error("scenario", f"{what}; boards upload like iot_upload devices")
    rate = t.get("rate")
    if rate is not None:
        rate = t.number("rate", positive=True)
        if not 0.001 <= rate <= 1000:
            raise t.error("rate", f"expected 0.001..1000 uploads/s per board, got {rate:g}")
    pattern = _id_pattern(t, "device_id_pattern", BoardsConfig.device_id_pattern, 1, 256)
    target = t.optional_string("target")
    if target is not None:
        target = validate_url(target, source=t.source, key=t.key("target"))
    key_env = t.optional_string("wifi_key_env")
    key_file = t.optional_string("wifi_key_file")
    if key_env and key_file:
        raise t.error("wifi_key_file", "give wifi_key_env or wifi_key_file, not both")
    if t.has("wifi_key"):
        raise t.error("wifi_key", "keys do not go in scenario files; use wifi_key_env")
    bc = BoardsConfig(
        ports=tuple(raw_ports),
        registry=_resolve(registry, t.source) if registry else None,
        scenario=chosen.name,
        rate=rate,
        device_id_pattern=pattern,
        target=target,
        wifi_ssid=t.string("wifi_ssid", "", max_len=32),
        wifi_key_env=key_env,
        wifi_key_file=_resolve(key_file, t.source) if key_file else None,
        emulator_protocol=t.choice("emulator_protocol", ("socket", "rfc2217"), "socket"),  # type: ignore[arg-type]
        silence=t.duration("silence", "5s", positive=True, maximum=MAX_WAIT),
        status_timeout=t.duration("status_timeout", "2s", positive=True, maximum=MAX_WAIT),
        baud=t.integer("baud", 115200, minimum=300, maximum=12_000_000),
    )
    t.finish()
    return bc


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> RunConfig:
    """Validate a TOML document (already loaded) into a :class:`RunConfig`."""
    root = _Table(data, "", source)
    scen_table = root.sub("scenarios")
    if not scen_table.data:
        raise ConfigError(
            "at least one [scenarios.NAME] table is required", source=source, key="scenarios"
        )
    scenarios = []
    for name in scen_table.data:
        scen_table.used.add(name)
        if not SCENARIO_NAME.fullmatch(name):
            raise ConfigError(
                "a scenario name is 1-64 letters, digits, '_' or '-'",
                source=source,
                key=f"scenarios.{_show(name)}",
            )
        scenarios.append(
            _scenario(name, _Table(scen_table.data[name], f"scenarios.{name}", source))
        )
    cfg = RunConfig(
        source=source,
        scenarios=tuple(scenarios),
        thresholds=_thresholds(root.sub("thresholds")),
        target=_target(root.sub("target")),
        server=_server(root.sub("server")),
        audio=_audio(root.sub("audio")),
        monitor=_monitor(root.sub("monitor")),
        output=_output(root.sub("output")),
        boards=_boards(root.sub("boards"), scenarios) if "boards" in data else None,
        raw=data,
    )
    known = {"scenarios", "thresholds", "target", "server", "audio", "monitor", "output"}
    known.add("boards")
    for key in data:
        if key not in known:
            raise ConfigError("unknown key", source=source, key=key)
    validate_thresholds(cfg.thresholds, source)
    _check_threshold_tags(cfg)
    names = {s.name for s in cfg.scenarios}
    for th in cfg.thresholds:
        for tag, value in th.tags:
            if tag == "scenario" and value not in names:
                raise ConfigError(
                    f"no scenario named {value!r}",
                    source=source,
                    key=f'thresholds."{th.metric_key}"',
                )
    return cfg


_ENV_REF = re.compile(r"\$\$|\$\{([^}:]*)(?::-([^}]*))?\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate_env(data: Any, env: Mapping[str, str], source: str, path: str = "") -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in every string value, from ``env``; ``$$`` is a $.

    A value that is nothing but one reference is read as TOML when it can be
    (``rate = "${RATE:-100}"`` gives the number 100), so numbers and booleans can come from the
    environment too. An unset variable without a default is an error naming file, key and
    variable.
    """
    if isinstance(data, dict):
        return {
            k: interpolate_env(v, env, source, f"{path}.{k}" if path else str(k))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [interpolate_env(v, env, source, f"{path}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def value(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if not _ENV_NAME.fullmatch(name):
            raise ConfigError(f"bad variable reference {m.group(0)!r}", source=source, key=path)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"${{{name}}} is not set (give -e {name}=VALUE, export it, "
            f"or write ${{{name}:-default}})",
            source=source,
            key=path,
        )

    whole = _ENV_REF.fullmatch(data)
    text = _ENV_REF.sub(value, data)
    if whole and whole.group(0) != "$$":
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    return text


def _check_threshold_tags(cfg: RunConfig) -> None:
    """Tag filters name only keys that samples carry (``metrics.RECORDED_TAG_KEYS``)."""
    from simulator.metrics import check_threshold_tag_keys

    user_keys = {k for sc in cfg.scenarios for k, _ in sc.tags}
    check_threshold_tag_keys(cfg.thresholds, user_keys, cfg.source)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set dotted.key=value``; the value is read as TOML, else as a string."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    key, text = assignment.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: bad key {key!r}")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        value = text
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {assignment!r}: {where} is not a table")
        node = nxt
    node[parts[-1]] = value


def scale_times(cfg: RunConfig, factor: float) -> RunConfig:
    """``--time-scale``: scale scenario/stage durations and start times, nothing else."""
    if not 0.0001 <= factor <= 1000:  # also refuses nan and inf
        raise ConfigError(f"--time-scale: expected a factor in 0.0001..1000, got {factor:g}")
    if factor == 1:
        return cfg

    out = [
        replace(sc, executor=sc.executor.scaled(factor), start_time=sc.start_time * factor)
        for sc in cfg.scenarios
    ]
    return replace(cfg, scenarios=tuple(out))


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    time_scale: float = 1.0,
    target: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    quick: Any = None,
) -> RunConfig:
    """Read, interpolate ``${VAR}``, override, validate and scale a scenario file.

    ``env`` is what ``${VAR}`` reads (default: the process environment); ``quick`` is a
    :class:`simulator.quickflags.QuickFlags` (k6's --vus/--duration/... shortcuts).
    """
    source = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"larger than {MAX_FILE_BYTES >> 20} MiB", source=source)
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 (byte {exc.start})", source=source) from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply", source=source) from None
    except FileNotFoundError:
        raise ConfigError("no such file", source=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a .toml file", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    data = interpolate_env(data, os.environ if env is None else env, source)
    for assignment in overrides:
        apply_override(data, assignment)
    if quick is not None:
        from simulator import quickflags

        quickflags.apply(data, quick, source)
    if target is not None:
        data.setdefault("target", {})
        if not isinstance(data["target"], dict):
            raise ConfigError("expected a table", source=source, key="target")
        data["target"]["url"] = validate_url(target, key="--target")
    cfg = parse_config(data, source)
    return scale_times(cfg, time_scale)
