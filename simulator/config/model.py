"""The configuration model: every section of a scenario file as a frozen dataclass, and the
bounds every value is checked against. Executor specs live in :mod:`simulator.executors`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from simulator.executors import EXECUTOR_KINDS
from simulator.executors import ConstantArrivalRate as ConstantArrivalRate
from simulator.executors import ConstantVUs as ConstantVUs
from simulator.executors import ExecutorConfig as ExecutorConfig
from simulator.executors import PerVUIterations as PerVUIterations
from simulator.executors import RampingArrivalRate as RampingArrivalRate
from simulator.executors import RampingVUs as RampingVUs
from simulator.executors import Stage as Stage
from simulator.executors import executor_duration as executor_duration
from simulator.metrics.thresholds import (
    Threshold,
)

# --------------------------------------------------------------------------- bounds
# Every value is bounded at parse time, so no schedule can ask for unbounded work or memory
# (issue 10: `target = 1e12` with `time_unit = "1us"` hung the generator).
MAX_DURATION = 7 * 86400.0  # a week: durations, start times
MAX_WAIT = 86400.0  # graceful stops, think time, timeouts
MAX_RATE = 100_000.0  # iterations/s per scenario (rate / time_unit, stage targets)
MAX_DEVICES = 1_000_000  # devices (VUs) per scenario: bounds the parse, not a design limit
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
    accounts_csv: ClassVar[None] = None

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
    accounts_csv: ClassVar[None] = None

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


@dataclass(frozen=True)
class PythonDevice:
    """``kind = "python:FILE.py:Class"``: a device class the user wrote
    (:mod:`simulator.userdevice`); the other keys of the table reach it as ``options``."""

    code: Any = None  # simulator.userdevice.DeviceClass: the checked spec, declared metrics
    options: tuple[tuple[str, Any], ...] = ()
    id_pattern: str = "esp32-{n:06d}"
    id_start: int = 1
    keep_alive: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    kind: Literal["python"] = "python"
    boards_follow: ClassVar[bool] = False
    needs_accounts: ClassVar[bool] = False
    accounts_csv: ClassVar[None] = None

    def audio_bytes(self) -> int:
        return int(self.code.audio_bytes) if self.code is not None else 0

    def audio_sample_rate(self) -> int | None:
        return None


DeviceConfig = IotUploadDevice | AnalyzeDevice | AuthDevice | PythonDevice
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
    timeout: float = 60.0  # k6: a request waits up to 60 s by default
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


#: most worker processes a run may start (``[run] workers``, ``--workers``)
MAX_WORKERS = 256
#: most connections ``[run] warm_connections = N`` may ask a run to open before its start
MAX_WARM_RUN = 100_000


@dataclass(frozen=True)
class RunSection:
    """``[run]``: how the run is executed. ``workers``: processes running the scenarios'
    execution segments (1: this process only; "auto", the default: one per core)."""

    workers: int | Literal["auto"] = "auto"
    #: run the workers on a Ray cluster (``--cluster``): "auto", "ray://HOST:PORT", "HOST:PORT"
    cluster: str | None = None
    #: keep-alive connections the run opens before its start: 0 (the default) dials on demand
    #: as k6 does, so the server sees only what the schedule needs; N for the run (split
    #: across workers); "auto" its arrival-rate scenarios' pre-allocated devices
    #: (``simulator.run.devices.warm_connections``)
    warm_connections: int | Literal["auto"] = 0


#: Top-level tables the engine carries unread for the run's companions, which check them: the
#: composition root has ``[boards]`` read by ``hw_bridge.boards_section`` (the engine knows the
#: name, never the keys).
COMPANION_SECTIONS = ("boards",)


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
    run: RunSection = field(default_factory=RunSection)
    #: name -> the companion section's table as written (COMPANION_SECTIONS), unread here
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: k6's ``--no-thresholds``: no threshold is judged (none fails the run or aborts it) and
    #: none was refused at load; ``thresholds`` holds those that would load, whose tag filters
    #: still name sub-metrics (the summary lists them once they have samples, as k6 does)
    no_thresholds: bool = False
    #: The document as loaded (after ``${VAR}``, ``--set``, quick flags): ``config.json`` and
    #: ``scfleet inspect`` show it, and ``scfleet report`` re-parses it from the run folder;
    #: the typed model cannot give it back as written (durations, defaults left out).
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def total_duration(self) -> float:
        """Scheduled length of the whole run (without graceful stops)."""
        return max(
            (s.start_time + executor_duration(s.executor) for s in self.scenarios), default=0
        )
