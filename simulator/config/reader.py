"""Loading a scenario file: ``${ENV}`` interpolation, ``--set`` overrides, k6 quick flags,
``--time-scale``, then :func:`~simulator.config.sections.parse_config`."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from scfleet_core.errors import ConfigError
from simulator.config.model import MAX_FILE_BYTES, RunConfig
from simulator.config.sections import parse_config, validate_url
from simulator.executors import ConstantArrivalRate as ConstantArrivalRate
from simulator.executors import ConstantVUs as ConstantVUs
from simulator.executors import ExecutorConfig as ExecutorConfig
from simulator.executors import PerVUIterations as PerVUIterations
from simulator.executors import RampingArrivalRate as RampingArrivalRate
from simulator.executors import RampingVUs as RampingVUs
from simulator.executors import Stage as Stage
from simulator.executors import executor_duration as executor_duration

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
        return toml_value(text)
    return text


#: tomllib raises a plain ValueError (a traceback, before) for an integer literal longer than
#: Python's limit on ``int(str)``: what a file holding one is told
LONG_INTEGER = f"invalid TOML: an integer of more than {sys.get_int_max_str_digits()} digits"


#: tomllib (like TOML's spec) does not accept a UTF-8 byte-order mark, which some Windows
#: editors write: before, the file was "invalid TOML: Invalid statement (at line 1, column 1)"
UTF8_BOM = b"\xef\xbb\xbf"
BOM_MESSAGE = (
    "invalid TOML: the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without one"
)


def toml_value(text: str) -> Any:
    """``text`` read as one TOML value, else ``text`` itself. Only one value: ``10\nx = 1``
    parsed as ``v = 10`` plus a key ``x`` that went nowhere, so a run took rate 10 from it."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except (ValueError, RecursionError):  # ValueError: TOMLDecodeError, or past int's digits
        return text
    return doc["v"] if len(doc) == 1 else text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set dotted.key=value``; the value is read as TOML, else as a string."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    key, text = assignment.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: bad key {key!r}")
    value = toml_value(text)
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
    no_thresholds: bool = False,
) -> RunConfig:
    """Read, interpolate ``${VAR}``, override, validate and scale a scenario file.

    ``env`` is what ``${VAR}`` reads (default: the process environment); ``quick`` is a
    :class:`simulator.config.quickflags.QuickFlags` (k6's --vus/--duration/... shortcuts);
    ``no_thresholds``: k6's ``--no-thresholds`` (:func:`parse_config`).
    """
    source = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"larger than {MAX_FILE_BYTES >> 20} MiB", source=source)
        if raw.startswith(UTF8_BOM):  # tomllib refuses it: one clear line, not "line 1, column 1"
            raise ConfigError(BOM_MESSAGE, source=source)
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
    except ValueError:  # tomllib's int() of a literal past Python's digit limit
        raise ConfigError(LONG_INTEGER, source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    data = interpolate_env(data, os.environ if env is None else env, source)
    for assignment in overrides:
        apply_override(data, assignment)
    if quick is not None:
        from simulator.config import quickflags

        quickflags.apply(data, quick, source)
    if target is not None:
        data.setdefault("target", {})
        if not isinstance(data["target"], dict):
            raise ConfigError("expected a table", source=source, key="target")
        data["target"]["url"] = validate_url(target, key="--target")
    cfg = parse_config(data, source, no_thresholds=no_thresholds)
    return scale_times(cfg, time_scale)
