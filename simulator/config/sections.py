"""Scenario files (TOML, k6's vocabulary) parsed into typed, validated values.

Everything past :func:`load_config` is a frozen dataclass; raw dicts never leave this module.
Errors are :class:`ConfigError` naming the file and the dotted key, e.g.
``configs/x.toml: scenarios.up.rate: expected a positive number, got -1``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scfleet_core.errors import ConfigError
from scfleet_core.limits import MAX_ACCOUNTS, MAX_UPLOAD_BYTES, MIN_UPLOAD_BYTES
from simulator.config.device_ids import IdRange, clash
from simulator.config.model import (
    _CONTROL,
    COMPANION_SECTIONS,
    DEVICE_KINDS,
    EXECUTORS,
    MAX_ANALYSIS_SECONDS,
    MAX_CHUNK_BYTES,
    MAX_DEVICES,
    MAX_DURATION,
    MAX_HEADER_VALUE,
    MAX_ITERATIONS,
    MAX_PID,
    MAX_RATE,
    MAX_SAMPLE_RATE,
    MAX_STAGES,
    MAX_WAIT,
    MAX_WARM_RUN,
    MAX_WORKERS,
    SCENARIO_NAME,
    AnalyzeDevice,
    AudioConfig,
    AuthDevice,
    Check,
    DeviceConfig,
    EmbeddedServerConfig,
    IotUploadDevice,
    MonitorConfig,
    OutputConfig,
    PythonDevice,
    RunConfig,
    RunSection,
    ScenarioConfig,
    TargetConfig,
)
from simulator.config.table import _id_pattern, _show, _Table
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
    k6_metric_key,
    parse_expression,
    parse_metric_key,
    validate_thresholds,
)


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


def _python_device(t: _Table, common: dict[str, Any]) -> DeviceConfig:
    """``kind = "python:..."``: the class is loaded now (bad user code: exit 104, naming the
    file); every other key of the table is the device's ``options``."""
    from simulator.userdevice import resolve

    spec = t.string("kind", "", max_len=4096)
    base = Path(t.source).parent if t.source and Path(t.source).exists() else None
    code = resolve(spec, base, t.key("kind"), t.source)
    options = tuple((k, v) for k, v in t.data.items() if k not in t.used)
    t.used.update(k for k, _ in options)
    return PythonDevice(code=code, options=options, **common)


def _device(t: _Table, default_kind: str, devices: int = 1) -> DeviceConfig:
    raw_kind = t.data.get("kind")
    if isinstance(raw_kind, str) and raw_kind.startswith("python:"):
        kind = "python"
    else:
        kind = t.choice("kind", DEVICE_KINDS, default_kind)
    id_start = t.integer("id_start", 1, maximum=1 << 48)
    common: dict[str, Any] = dict(
        id_pattern=_id_pattern(t, "id_pattern", "esp32-{n:06d}", id_start, devices),
        id_start=id_start,
        keep_alive=t.boolean("keep_alive", True),
        headers=t.string_map("headers", header=True, max_len=MAX_HEADER_VALUE),
    )
    dev = _python_device(t, common) if kind == "python" else _DEVICE_READERS[kind](t, common)
    t.finish()
    return dev


def _known_metrics(cfg: RunConfig) -> dict[str, str] | None:
    """Built-in metrics plus the custom ones Python devices declare (name -> type)."""
    custom = [
        m
        for sc in cfg.scenarios
        if isinstance(sc.device, PythonDevice)
        for m in sc.device.code.metrics
    ]
    if not custom:
        return None
    from simulator.metrics import BUILTIN

    known = {name: spec[0] for name, spec in BUILTIN.items()}
    for name, mtype, _contains in custom:
        if known.get(name, mtype) != mtype:
            raise ConfigError(
                f"custom metric {name!r} ({mtype}) clashes with the {known[name]} of that name",
                source=cfg.source,
            )
        known[name] = mtype
    return known


def _resolve(path: str, source: str) -> Path:
    p = Path(path)
    if not p.is_absolute() and source and Path(source).exists():
        cand = Path(source).parent / p
        if cand.exists() or not p.exists():
            return cand
    return p


#: a path in the file, relative to the file (for companions' sections, e.g. ``[boards]``)
resolve_path = _resolve


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


def _thresholds(t: _Table, *, lenient: bool = False) -> tuple[Threshold, ...]:
    """``[thresholds]``; ``lenient`` (``--no-thresholds``): a metric key or an expression that
    does not parse is left out, not refused, as k6 1.1 parses none then (``p(95)<<abc`` ran
    and exited 0); the table's shape (a number for an expression, a long form's keys and
    types) is still checked, as k6 still refuses options JSON of the wrong type (104)."""
    out = []
    for key, spec in t.data.items():
        t.used.add(key)
        try:
            metric, tags = parse_metric_key(key)
        except ValueError as exc:
            if lenient:
                metric, tags = "", ()
            else:
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
                if lenient and isinstance(expr_text, str):
                    continue
                raise t.error(where, str(exc)) from None
            if metric:
                out.append(Threshold(k6_metric_key(key), metric, tags, expr, abort, delay))
    return tuple(out)


def _target(t: _Table) -> TargetConfig:
    url = t.optional_string("url")
    if url is not None:
        url = validate_url(url, source=t.source, key=t.key("url"))
    tc = TargetConfig(
        url=url,
        timeout=t.duration("timeout", "60s", positive=True, maximum=MAX_WAIT),  # k6 default
        health_path=t.request_path("health_path", "/health"),
        transport="aiohttp"
        if t.choice("transport", ("fast", "aiohttp"), "fast") == "aiohttp"
        else "fast",
    )
    t.finish()
    return tc


def validate_url(url: str, *, source: str | None = None, key: str | None = None) -> str:
    """An http(s) base URL with a host; trailing slash removed.

    Credentials (``user:pass@``) are refused, and never echoed: neither the URL nor its
    ``url`` tag is a place for a secret (summary, config.json, run.ndjson, metrics.json all
    show the target), and the fast client would not send them (aiohttp would, as Basic auth).
    """
    shown = _show(_USERINFO.sub("//***@", url, count=1))
    try:
        parts = urlsplit(url)
        bad = _CONTROL.search(url) or " " in url or len(url) > 2048
    except ValueError:  # e.g. 'http://[::1' (unterminated IPv6 literal)
        raise ConfigError(f"not a valid URL: {shown}", source=source, key=key) from None
    if bad or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"expected a URL like http://127.0.0.1:8080, got {shown}", source=source, key=key
        )
    if "@" in parts.netloc:
        raise ConfigError(
            f"credentials in the URL are not sent and would be shown wherever the target is "
            f"({shown}): give an Authorization header in the device's headers instead",
            source=source,
            key=key,
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"bad port in URL {shown}", source=source, key=key) from None
    return url.rstrip("/")


#: A URL's user-info (``//user:pass@``), masked in what an error shows.
_USERINFO = re.compile(r"//[^/?#]*@")


def _server(t: _Table) -> EmbeddedServerConfig:
    sc = EmbeddedServerConfig(
        analysis_workers=t.integer("analysis_workers", 2, minimum=1, maximum=64),
        extra_cost_ms=t.number("extra_cost_ms", 0.0, maximum=60_000),
        max_upload_bytes=t.integer(
            "max_upload_bytes", 10 * 1024 * 1024, minimum=MIN_UPLOAD_BYTES, maximum=MAX_UPLOAD_BYTES
        ),
        accounts=t.integer("accounts", 0, maximum=MAX_ACCOUNTS),
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
        # the bank renders at least 0.01 s (audio_synth.bank): refused here, at load, not at the run
        seconds=t.number("seconds", 30.0, minimum=0.01, maximum=600),
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


def _run(t: _Table) -> RunSection:
    raw = t.get("workers", "auto")
    if raw != "auto" and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise t.error("workers", f'expected a number of processes or "auto", got {_show(raw)}')
    if raw != "auto" and not 1 <= raw <= MAX_WORKERS:
        raise t.error("workers", f"expected 1..{MAX_WORKERS} worker processes, got {raw}")
    cluster = t.get("cluster", None)
    if cluster is not None:
        try:
            cluster = cluster_address(cluster)
        except ValueError as exc:
            raise t.error("cluster", str(exc)) from None
    warm = t.get("warm_connections", 0)
    if warm != "auto" and (
        isinstance(warm, bool) or not isinstance(warm, int) or not 0 <= warm <= MAX_WARM_RUN
    ):
        raise t.error(
            "warm_connections",
            f'expected 0..{MAX_WARM_RUN:,} connections or "auto", got {_show(warm)}',
        )
    rs = RunSection(workers=raw, cluster=cluster, warm_connections=warm)
    t.finish()
    return rs


def cluster_address(raw: object) -> str:
    """A Ray cluster's address as ``[run] cluster`` / ``--cluster`` take it: ``auto``
    (``RAY_ADDRESS``, else the cluster started on this machine), ``ray://HOST:PORT`` (Ray
    client) or ``HOST:PORT`` (the cluster's GCS). ValueError says what is wrong."""
    expected = 'expected "auto", "ray://HOST:PORT" or "HOST:PORT"'
    if not isinstance(raw, str) or not raw or len(raw) > 300 or raw != raw.strip():
        raise ValueError(f"{expected}, got {_show(raw)}")
    if raw == "auto":
        return raw
    rest = raw.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if (
        not sep
        or not host
        or "/" in rest
        or any(c.isspace() for c in rest)
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise ValueError(f"{expected}, got {_show(raw)}")
    return raw


def _output(t: _Table) -> OutputConfig:
    stats = t.get("summary_trend_stats", list(OutputConfig.summary_trend_stats))
    if not isinstance(stats, list) or len(stats) > 50:
        raise t.error("summary_trend_stats", "expected a list like ['avg', 'p(95)']")
    for s in stats:
        if not isinstance(s, str) or len(s) > 16:
            raise t.error("summary_trend_stats", f"unknown statistic {_show(s)}")
        try:
            agg = parse_expression(f"{s}<1").aggregation
        except ValueError:
            agg = ""
        # k6's GetResolversForTrendColumns: avg min med max count p(N), nothing else ('rate'
        # passed here and the summary raised after the run, a traceback and no summary.json)
        if agg != s or not (agg in ("avg", "min", "med", "max", "count") or agg.startswith("p(")):
            raise t.error(
                "summary_trend_stats",
                f"unknown statistic {_show(s)} (use avg, min, med, max, count or p(N))",
            )
    oc = OutputConfig(summary_trend_stats=tuple(stats), out_dir=t.optional_string("out_dir"))
    t.finish()
    return oc


def _check_threshold_tags(cfg: RunConfig) -> None:
    """Tag filters name only keys that samples carry (``metrics.RECORDED_TAG_KEYS``)."""
    from simulator.metrics import check_threshold_tag_keys

    user_keys = {k for sc in cfg.scenarios for k, _ in sc.tags}
    check_threshold_tag_keys(cfg.thresholds, user_keys, cfg.source)


def sequenced_ranges(cfg: RunConfig) -> list[IdRange]:
    """The device IDs of every scenario whose devices send ``X-Sequence`` from 0: ``iot_upload``
    and Python devices (which may; the shipped ``IotUpload`` class and the README's example do),
    each ``id_start`` .. ``id_start + device_bound - 1``. ``ai_analysis`` and ``auth_flow`` send
    none, and the server keys nothing else on the device."""
    out = []
    for sc in cfg.scenarios:
        dev = sc.device
        if isinstance(dev, IotUploadDevice | PythonDevice):
            count = max(sc.executor.device_bound(), 1)
            out.append(IdRange(sc.name, dev.id_pattern, dev.id_start, dev.id_start + count - 1))
    return out


def _check_shared_device_ids(cfg: RunConfig) -> None:
    """Refuse two senders of ``X-Sequence`` with one ``X-Device-ID`` (simulator.config.
    device_ids): each numbers its uploads from sequence 0, and a server that de-duplicates
    (device, sequence) — the reference server does, whatever the route — answers one's uploads
    as the other's retries and stores them once, while the summary counts each 200 (two
    default scenarios: 60 counted, 30 stored). Two scenarios with one plain pattern are told
    the first free ``id_start``; other clashes (patterns that render one ID, a pattern that
    renders one ID for two devices) name the ID and both n."""
    why = "each numbering uploads from sequence 0: the server would store one's as the other's"
    earlier: list[IdRange] = []
    for r in sequenced_ranges(cfg):
        key = f"scenarios.{r.owner}.device.id_pattern"
        own = r.own_clash()
        if own is not None:
            n, m, dev_id = own
            raise ConfigError(
                f"scenario {r.owner!r} sends device ID {dev_id!r} for devices n={n} and n={m} "
                f"({r.pattern!r}); {why} retries; give each device its own ID, e.g. "
                "'esp32-{n:06d}'",
                source=cfg.source,
                key=key,
            )
        for e in earlier:
            hit = clash(e, r)
            if hit is None:
                continue
            if e.pattern == r.pattern:
                same = [x for x in earlier if x.pattern == r.pattern]
                count = r.last - r.first + 1
                free = min(
                    s
                    for s in (1, *(x.last + 1 for x in same))
                    if all(s > x.last or s + count - 1 < x.first for x in same)
                )
                raise ConfigError(
                    f"scenarios {e.owner!r} and {r.owner!r} both send device IDs from "
                    f"{hit[2]!r} ({r.pattern!r}, {e.first}..{e.last} and {r.first}..{r.last}), "
                    f"{why} retries; use id_start = {free} in {r.owner!r} or another id_pattern",
                    source=cfg.source,
                    key=f"scenarios.{r.owner}.device.id_start",
                )
            raise ConfigError(
                f"scenarios {e.owner!r} and {r.owner!r} both send device ID {hit[2]!r} "
                f"({e.pattern!r} n={hit[0]}, {r.pattern!r} n={hit[1]}), {why} retries; "
                "give one another id_pattern or id_start",
                source=cfg.source,
                key=key,
            )
        earlier.append(r)


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", *, no_thresholds: bool = False
) -> RunConfig:
    """Validate a TOML document (already loaded) into a :class:`RunConfig`. ``no_thresholds``
    (k6's ``--no-thresholds``): thresholds are not judged, so none is refused either
    (:func:`_usable_thresholds`)."""
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
        thresholds=_thresholds(root.sub("thresholds"), lenient=no_thresholds),
        target=_target(root.sub("target")),
        server=_server(root.sub("server")),
        audio=_audio(root.sub("audio")),
        monitor=_monitor(root.sub("monitor")),
        output=_output(root.sub("output")),
        run=_run(root.sub("run")),
        sections={name: root.sub(name).data for name in COMPANION_SECTIONS if name in data},
        raw=data,
    )
    known = {"scenarios", "thresholds", "target", "server", "audio", "monitor", "output"}
    known.update(COMPANION_SECTIONS)
    known.add("run")
    for key in data:
        if key not in known:
            raise ConfigError("unknown key", source=source, key=key)
    if cfg.run.warm_connections != 0 and cfg.target.transport == "aiohttp":
        # only the fast client dials ahead: a run asking for N opened none, and said nothing
        raise ConfigError(
            'the aiohttp transport dials on demand only: use 0, or [target] transport = "fast"',
            source=source,
            key="run.warm_connections",
        )
    _check_shared_device_ids(cfg)
    metrics = _known_metrics(cfg)  # a custom metric's clash is no threshold's: refused anyway
    if no_thresholds:
        return _usable_thresholds(cfg, metrics)
    _check_thresholds(cfg, metrics)
    return cfg


def _usable_thresholds(cfg: RunConfig, known: Mapping[str, str] | None) -> RunConfig:
    """``cfg`` under ``--no-thresholds``: its thresholds that would load, one by one, the
    others left out without a word. k6 1.1 refuses none then (an unknown metric, an
    aggregation its type lacks, a malformed tag filter all ran and exited 0) but still makes
    the sub-metrics of the keys it can read (listed in its summary once they have samples)."""
    kept = []
    for th in cfg.thresholds:
        try:
            _check_thresholds(replace(cfg, thresholds=(th,)), known)
        except ConfigError:
            continue
        kept.append(th)
    return replace(cfg, thresholds=tuple(kept), no_thresholds=True)


def _check_thresholds(cfg: RunConfig, known: Mapping[str, str] | None) -> None:
    """Refuse a threshold no run could judge (exit 104), naming its key: k6's checks at load
    (:func:`validate_thresholds`) and scfleet's on tag filters."""
    source = cfg.source
    validate_thresholds(cfg.thresholds, source, known)
    _check_threshold_tags(cfg)
    names = {s.name for s in cfg.scenarios}
    for th in cfg.thresholds:
        if th.metric == "http_req_tls_handshaking" and (cfg.target.url or "").startswith("https"):
            raise ConfigError(
                "scfleet counts the TLS handshake in http_req_connecting and does not record "
                "it apart: over HTTPS put the threshold on http_req_connecting",
                source=source,
                key=f'thresholds."{th.metric_key}"',
            )
        for tag, value in th.tags:
            if tag == "scenario" and value not in names:
                raise ConfigError(
                    f"no scenario named {value!r}",
                    source=source,
                    key=f'thresholds."{th.metric_key}"',
                )
    _check_check_names(cfg)
    _check_endpoints(cfg)
    check_url_filters(cfg, cfg.target.url)


def _requested_endpoints(dev: DeviceConfig) -> tuple[str, ...]:
    """The paths a built-in kind's devices (and boards, an ``iot_upload`` one's) request."""
    if isinstance(dev, AuthDevice):
        return (dev.login_endpoint, dev.verify_endpoint)
    assert isinstance(dev, IotUploadDevice | AnalyzeDevice)
    return (dev.endpoint,)


_SCHEMES = ("http://", "https://")


def _check_endpoints(cfg: RunConfig) -> None:
    """An ``{endpoint:PATH}`` or ``{name:PATH}`` filter names a path a device requests (a
    request's ``name`` is its endpoint): a misspelt one had no samples and passed. A Python
    device names its own requests, so with one in the run any value goes; so does a key of a
    scenario's own ``tags``. Except a ``{name:URL}`` filter: k6's ``name`` defaults to the URL
    requested, a Python device's to the path (or its ``name=``), so the filter k6 matched every
    request with matched none here, and its trend read 0 and passed (k6 1.1 failed
    ``{name:URL/delay/100}`` ``min<100`` where scfleet passed it): refused, naming ``{url:…}``."""
    own = {k for sc in cfg.scenarios for k, _ in sc.tags}
    if any(isinstance(sc.device, PythonDevice) for sc in cfg.scenarios):
        for th in cfg.thresholds:
            for tag, value in th.tags:
                if tag == "name" and "name" not in own and value.startswith(_SCHEMES):
                    path = "/" + value.split("//", 1)[1].partition("/")[2]
                    raise ConfigError(
                        f"a request's name is its path here (or the device's name=), where "
                        f"k6's is its URL: {{name:{path}}} or {{url:{value}}}",
                        source=cfg.source,
                        key=f'thresholds."{th.metric_key}"',
                    )
        return
    paths = sorted({p for sc in cfg.scenarios for p in _requested_endpoints(sc.device)})
    for th in cfg.thresholds:
        for tag, value in th.tags:
            if tag in ("endpoint", "name") and tag not in own and value not in paths:
                near = difflib.get_close_matches(value, paths, n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}?" if near else f"requested: {paths}"
                whole = [p for p in paths if value.startswith(("http://", "https://"))]
                whole = [p for p in whole if value.endswith(p)]
                if tag == "name" and whole:  # k6's name defaults to the URL, ours is the path
                    hint = (
                        f"a request's name is its endpoint here, where k6's is its URL: "
                        f"{{name:{whole[0]}}} or {{url:{value}}}"
                    )
                raise ConfigError(
                    f"no device of this run requests {tag} {value!r} ({hint})",
                    source=cfg.source,
                    key=f'thresholds."{th.metric_key}"',
                )


def check_url_filters(cfg: RunConfig, base: str | None) -> None:
    """A ``{url:URL}`` filter names a URL a device requests: a built-in device's request is
    tagged ``url`` = target + endpoint (as k6 tags the whole URL requested and matches it
    exactly), so a misspelt one had no samples and passed. With the target known (``base``:
    ``[target] url``, ``--target`` at load; a run's own ``target`` at ``api.run``) the URL must
    be one of those; with the embedded server (None), whose port is chosen when it starts, it
    must end in a requested path. A Python device requests URLs of its own, so with one in the
    run any value goes; so does a key of a scenario's own ``tags``. Under ``--no-thresholds``
    (``cfg.no_thresholds``) nothing is judged, so nothing is refused."""
    if cfg.no_thresholds or any(isinstance(sc.device, PythonDevice) for sc in cfg.scenarios):
        return
    if "url" in {k for sc in cfg.scenarios for k, _ in sc.tags}:
        return
    paths = sorted({p for sc in cfg.scenarios for p in _requested_endpoints(sc.device)})
    urls = [base + p for p in paths] if base is not None else []
    for th in cfg.thresholds:
        for tag, value in th.tags:
            if tag != "url":
                continue
            if base is not None and value not in urls:
                near = difflib.get_close_matches(value, urls, n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}? " if near else ""
                why = f"{hint}the run's URLs: {urls}"
            elif base is None and not (
                value.startswith(("http://", "https://")) and value.endswith(tuple(paths))
            ):
                why = (
                    f"the embedded server's URL (its port chosen when it starts) followed by a "
                    f"requested path: {paths}"
                )
            else:
                continue
            raise ConfigError(
                f"no device of this run requests url {value!r}: a url is the whole URL "
                f"requested ({why})",
                source=cfg.source,
                key=f'thresholds."{th.metric_key}"',
            )


def _check_check_names(cfg: RunConfig) -> None:
    """A ``{check:NAME}`` filter names a declared check: a misspelt one had no samples and
    passed, whatever the checks did. A Python device names its own checks at run time, so
    with one in the run any name goes."""
    if any(isinstance(sc.device, PythonDevice) for sc in cfg.scenarios):
        return
    declared = {c.name for sc in cfg.scenarios for c in sc.checks}
    for th in cfg.thresholds:
        for tag, value in th.tags:
            if tag == "check" and value not in declared:
                near = difflib.get_close_matches(value, sorted(declared), n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}?" if near else f"declared: {sorted(declared)}"
                raise ConfigError(
                    f"no check named {value!r} ({hint})",
                    source=cfg.source,
                    key=f'thresholds."{th.metric_key}"',
                )
