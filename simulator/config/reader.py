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

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: ``${A:-${B:-${C}}}`` nests; thousands deep were a RecursionError
_MAX_NESTING = 8


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
    text, whole = _expand(data, env, source, path)
    return toml_value(text) if whole else text


def _closing_brace(text: str, start: int) -> int:
    """Where the ``}`` that closes a ``${`` opened before ``start`` is, or -1. Braces pair up
    inside, as in bash and docker compose: ``${PAT:-esp32-{n}}`` has the default
    ``esp32-{n}`` (it ended at the first ``}``, leaving ``esp32-{n`` and a stray ``}``)."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _expand(
    data: str, env: Mapping[str, str], source: str, path: str, depth: int = 0
) -> tuple[str, bool]:
    """``data`` with its references replaced, and whether it was nothing but one reference.
    A default is expanded in turn (``${A:-${B}}``); a ``${`` whose braces never close is an
    error naming the file and key, not text left as it was ($$ writes a literal $)."""
    if depth > _MAX_NESTING:
        raise ConfigError(f"defaults nested more than {_MAX_NESTING} deep", source=source, key=path)
    out: list[str] = []
    i = 0
    whole = False
    while (j := data.find("$", i)) >= 0:
        out.append(data[i:j])
        if data.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        if not data.startswith("${", j):
            out.append("$")
            i = j + 1
            continue
        end = _closing_brace(data, j + 2)
        if end < 0:
            # the text is not quoted: a default may be a secret (a Wi-Fi key, a password)
            raise ConfigError(
                f"the ${{ at character {j + 1} is not closed (braces in a default must pair "
                "up; write $$ for a literal $)",
                source=source,
                key=path,
            )
        name, sep, default = data[j + 2 : end].partition(":-")
        if not _ENV_NAME.fullmatch(name):
            # its name only: what follows ":-" may be a secret
            raise ConfigError(
                f"bad variable reference: name {name[:60]!r}", source=source, key=path
            )
        if name in env:
            out.append(env[name])
        elif sep:
            out.append(_expand(default, env, source, path, depth + 1)[0])
        else:
            raise ConfigError(
                f"${{{name}}} is not set (give -e {name}=VALUE, export it, "
                f"or write ${{{name}:-default}})",
                source=source,
                key=path,
            )
        whole = j == 0 and end == len(data) - 1
        i = end + 1
    out.append(data[i:])
    return "".join(out), whole


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
