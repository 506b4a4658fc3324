"""Devices written in Python: the user's side of ``kind = "python:FILE.py:Class"``.

In the spirit of Locust's ``User``, but event-loop native: one instance per virtual device,
``on_start`` once before its first iteration, ``iteration`` each time the executor schedules it,
``on_stop`` once after the scenario ends. Every request goes through the run's transport and is
recorded under k6's names (``http_reqs``, ``http_req_duration``, ... with the scenario, kind,
endpoint, method, status tags), exactly as the built-in kinds record theirs::

    from simulator.userdevice import Counter, Device, Trend

    class Sensor(Device):
        audio_bytes = 32000                  # reads 1 s of 16 kHz PCM per iteration
        uploads = Counter("sensor_uploads")  # custom metrics, usable in [thresholds]
        score = Trend("sensor_score")

        async def on_start(self) -> None:
            self.seq = 0                      # per-device state

        async def iteration(self) -> None:
            pcm = self.audio.chunk(self.seq)
            self.seq += 1
            res = await self.client.post("/api/esp32/audio/upload", data=pcm,
                                         headers={"X-Device-ID": self.device_id})
            self.check("accepted", res.status == 200)
            self.uploads.add(1)

A method that raises (or an ``iteration`` that returns ``False``) is an error counted on that
iteration (``iteration_errors``, with its message in the summary's notes); the run goes on.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json as jsonlib
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from scfleet_core.errors import ConfigError, ScriptError
from simulator.http.transport import cut_body_text

#: custom metric names: k6 1.1's rule (``compileNameRegex``: 2 to 129 characters; k6 refused
#: ``Trend('t')`` at init, exit 107), which every output format writes unquoted
METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{1,128}")


class Metric:
    """A custom metric declared on a :class:`Device` class; ``self.<attr>.add(value, **tags)``.

    Declared metrics are known to threshold validation, so ``"sensor_score" = ["p(95)<800"]``
    is accepted (and a typo is refused) before the run starts.
    """

    type: ClassVar[str] = ""

    def __init__(self, name: str, *, time: bool = False) -> None:
        if not METRIC_NAME.fullmatch(name):
            raise ValueError(
                f"metric name {name!r}: expected [A-Za-z_][A-Za-z0-9_]*, "
                f"2 to 129 characters (k6's rule)"
            )
        self.name = name
        self.time = time  # a Trend of milliseconds (reported in ms, like http_req_duration)

    @property
    def contains(self) -> str:
        return "time" if self.time else "default"

    def __get__(self, obj: Device | None, owner: Any = None) -> Any:
        if obj is None:
            return self
        return BoundMetric(self, obj._scfleet_recorder)


class Counter(Metric):
    """A sum (k6 Counter): ``add(n)``."""

    type = "counter"


class Rate(Metric):
    """A share of true values (k6 Rate): ``add(True)``."""

    type = "rate"


class Gauge(Metric):
    """The last value (and min/max) (k6 Gauge): ``add(v)``."""

    type = "gauge"


class Trend(Metric):
    """A distribution (k6 Trend): ``add(v)``; avg, med, p(N), min, max in thresholds.

    Floats, kept as thousandths (0.001 resolution) to three significant digits, as the run's
    HDR histograms keep times; values must be >= 0. ``Trend(name, time=True)``: milliseconds
    (kept to the µs, reported like ``http_req_duration``).
    """

    type = "trend"


MetricSink = Callable[["Metric", float, Mapping[str, str]], None]
#: a multipart file's content: one buffer, or several written one after the other
FileContent = bytes | memoryview | tuple[bytes | memoryview, ...]


@dataclass(frozen=True)
class BoundMetric:
    """A declared metric on one device: records with the device's scenario and kind tags."""

    metric: Metric
    sink: MetricSink

    def add(self, value: float | bool, **tags: str) -> None:
        self.sink(self.metric, float(value), tags)


@dataclass(frozen=True)
class Reply:
    """What a device's request got back (``status`` 0: no answer; ``error`` says why)."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    error: str | None
    duration_ms: float
    #: body bytes past the first MAX_KEPT_BODY (1 MiB), read but not kept in ``body``
    body_cut: int = 0

    @property
    def ok(self) -> bool:
        """k6's default expected response: 200–399."""
        return 200 <= self.status < 400

    def json(self) -> Any:
        """The body as JSON (``ValueError`` if it is not, or was cut)."""
        if self.body_cut:
            raise ValueError(cut_body_text(len(self.body), self.body_cut))
        return jsonlib.loads(self.body)


class Client:
    """A device's HTTP client: the run's transport, recorded under k6's metric names.

    ``data``: raw bytes (or memoryview); ``json``: any JSON value; ``files``/``fields``: a
    multipart form (``files={"audio": ("a.wav", wav_bytes, "audio/wav")}``; the content may be
    a tuple of buffers, written in order, never joined). ``name`` sets the ``endpoint`` tag
    (default: the path), so ``/items/17`` and ``/items/18`` can share one. ``checks=False``:
    the scenario's ``[[checks]]`` skip this reply (a login before the requests they judge).
    The device's cookie jar keeps what replies set; ``clear_cookies()`` empties it.
    """

    def __init__(
        self, send: Callable[..., Awaitable[Reply]], clear: Callable[[], None] = lambda: None
    ) -> None:
        self._send = send
        self._clear = clear

    def clear_cookies(self) -> None:
        """Empty this device's cookie jar (a session the server ended)."""
        self._clear()

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | memoryview | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, FileContent, str]] | None = None,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        checks: bool = True,
    ) -> Reply:
        return await self._send(method, path, data, json, files, fields, headers, name, checks)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)


class AudioStream:
    """The device's machine sound from :mod:`audio_synth` (the run's shared PCM bank): the same
    device index and sequence always give the same bytes, as the built-in kinds send."""

    def __init__(self, bank: Any, index: int, nbytes: int) -> None:
        self._bank = bank
        self._index = index
        self.chunk_bytes = nbytes
        self.sample_rate: int = bank.sample_rate

    def chunk(self, sequence: int, nbytes: int | None = None) -> memoryview:
        """16-bit mono PCM, ``nbytes`` (default the class's ``audio_bytes``), zero-copy."""
        return self._bank.chunk(self._index, sequence, nbytes or self.chunk_bytes)  # type: ignore[no-any-return]

    def wav(self, sequence: int, nbytes: int | None = None) -> bytes:
        """The same PCM as a WAV file."""
        header, pcm = self.wav_parts(sequence, nbytes)
        return bytes(header) + bytes(pcm)

    def wav_parts(self, sequence: int, nbytes: int | None = None) -> tuple[bytes, memoryview]:
        """The WAV file as (header, PCM), the PCM zero-copy: a multipart file's content."""
        header, pcm = self._bank.wav(self._index, sequence, nbytes or self.chunk_bytes)
        return header, pcm

    @property
    def seed(self) -> int:
        """The run's ``[audio] seed``: for choices that must repeat from run to run."""
        return int(self._bank.seed)

    @property
    def label(self) -> str:
        """The machine/condition of this device's sound, e.g. ``fan/anomalous``."""
        return str(self._bank.label(self._index))


class Device:
    """Subclass this; the engine makes one instance per virtual device (no ``__init__`` args).

    Set by the engine before ``on_start``: ``device_id``, ``index`` (0-based, stable),
    ``scenario``, ``options`` (the other keys of the scenario's ``[...device]`` table),
    ``client`` and ``audio`` (None unless the class sets ``audio_bytes``).
    """

    #: the largest PCM slice (bytes, even) one call of ``audio.chunk`` reads; 0: no audio
    audio_bytes: ClassVar[int] = 0

    device_id: str
    index: int
    scenario: str
    options: Mapping[str, Any]
    client: Client
    audio: AudioStream | None
    _scfleet_recorder: MetricSink
    _scfleet_check: Callable[[str, bool], None]

    async def on_start(self) -> None:
        """Once per device, before its first iteration (log in, open a session...)."""

    async def iteration(self) -> bool | None:
        """One iteration; return ``False`` to count it as an error without raising."""
        raise NotImplementedError(f"{type(self).__name__}.iteration is not written")

    async def on_stop(self) -> None:
        """Once per started device, after its scenario ends."""

    def check(self, name: str, condition: bool | Callable[[], bool]) -> bool:
        """k6's ``check``: records a pass or fail in ``checks{check:NAME}``; returns it."""
        try:
            ok = bool(condition() if callable(condition) else condition)
        except Exception:  # noqa: BLE001 - a check that raises is a failed check, as in k6
            ok = False
        self._scfleet_check(name, ok)
        return ok


@dataclass(frozen=True)
class DeviceClass:
    """A checked ``python:`` device spec: where it comes from and the metrics it declares."""

    spec: str
    path: Path | None  # the file, or None for a module path
    module: str
    cls_name: str
    metrics: tuple[tuple[str, str, str], ...]  # (name, type, contains)
    audio_bytes: int

    def load(self) -> type[Device]:
        return _load(self.path, self.module, self.cls_name, self.spec)


_LOADED: dict[tuple[str, str], type[Device]] = {}


def _load(path: Path | None, module: str, cls_name: str, source: str) -> type[Device]:
    key = (str(path) if path else module, cls_name)
    got = _LOADED.get(key)
    if got is not None:
        return got
    where = str(path) if path else module
    try:
        if path is not None:
            if not path.is_file():
                raise ConfigError("no such file", source=where)
            name = "scfleet_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            mod = sys.modules.get(name)
            if mod is None:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ConfigError("cannot load as a Python file", source=where)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[name] = mod
                try:
                    spec.loader.exec_module(mod)
                except BaseException:
                    sys.modules.pop(name, None)
                    raise
        else:
            mod = importlib.import_module(module)
    except ConfigError:
        raise
    # the code failing is k6's script failing at init (ScriptError, exit 107); the scenario
    # file naming a module that is not there is its own mistake (ConfigError, 104)
    except SyntaxError as exc:
        raise ScriptError(
            f"syntax error at line {exc.lineno}: {exc.msg}", source=exc.filename or where
        ) from None
    except ModuleNotFoundError as exc:
        named = module == exc.name or module.startswith(f"{exc.name}.")
        error = ConfigError if named else ScriptError
        raise error(f"no module named {exc.name!r}", source=where) from None
    except KeyboardInterrupt:  # a Ctrl-C while importing: the run is interrupted
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's module failed while importing,
        # SystemExit too (a script's sys.exit at import ended scfleet with its code, silently)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ScriptError(
            f"importing it raised {type(exc).__name__}: {first}", source=where
        ) from None
    cls = getattr(mod, cls_name, None)
    if not isinstance(cls, type):
        names = sorted(
            n
            for n, v in vars(mod).items()
            if isinstance(v, type) and issubclass(v, Device) and v is not Device
        )
        hint = f"device classes there: {', '.join(names)}" if names else "it defines no Device"
        raise ConfigError(f"no class named {cls_name!r} ({hint})", source=where)
    if not issubclass(cls, Device) or cls is Device:
        raise ConfigError(
            f"{cls_name} is not a subclass of simulator.userdevice.Device", source=where
        )
    _LOADED[key] = cls
    return cls


def resolve(spec: str, base: Path | None, key: str, source: str) -> DeviceClass:
    """``python:path/to/file.py:Class`` (path relative to the scenario file) or
    ``python:package.module:Class``: load it now, so bad user code is a one-line error naming
    the file before anything runs (exit 104; 107 for code that fails to load)."""
    body = spec[len("python:") :]
    target, sep, cls_name = body.rpartition(":")
    if not sep or not target or not cls_name.isidentifier():
        raise ConfigError(
            f"expected python:path/to/file.py:ClassName or python:module:ClassName, got {spec!r}",
            source=source,
            key=key,
        )
    path: Path | None = None
    module = ""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_absolute() and base is not None:
            path = base / path
    else:
        module = target
    cls = _load(path, module, cls_name, spec)
    metrics: dict[str, tuple[str, str, str]] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Metric):
                metrics[value.name] = (value.name, value.type, value.contains)
    nbytes = cls.audio_bytes
    if not isinstance(nbytes, int) or nbytes < 0 or nbytes % 2 or nbytes > 16 << 20:
        raise ConfigError(
            f"{cls_name}.audio_bytes: expected an even byte count up to 16 MiB, got {nbytes!r}",
            source=str(path) if path else module,
        )
    return DeviceClass(spec, path, module, cls_name, tuple(metrics.values()), nbytes)
