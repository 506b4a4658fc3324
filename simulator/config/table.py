"""Reading one TOML table with bounds and one-line errors naming the file and dotted key."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from scfleet_core.errors import ConfigError
from simulator.config.model import _CONTROL, _PATH, _TOKEN, MAX_DURATION, MAX_MAP_ITEMS, MAX_TEXT
from simulator.durations import parse_duration
from simulator.executors import ConstantArrivalRate as ConstantArrivalRate
from simulator.executors import ConstantVUs as ConstantVUs
from simulator.executors import ExecutorConfig as ExecutorConfig
from simulator.executors import PerVUIterations as PerVUIterations
from simulator.executors import RampingArrivalRate as RampingArrivalRate
from simulator.executors import RampingVUs as RampingVUs
from simulator.executors import Stage as Stage
from simulator.executors import executor_duration as executor_duration

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


# Public names for the tables the engine carries for its companions (COMPANION_SECTIONS), which
# the composition root has read with the same one-line errors (hw_bridge.boards_section).
Table = _Table
text_problem = _text_problem
id_pattern = _id_pattern
