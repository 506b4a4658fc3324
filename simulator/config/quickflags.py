"""k6's quick flags (``--vus --duration --iterations --rate --stage``) and ``-e KEY=VALUE``.

The flags override the scenario file the way k6's execution shortcuts override a script's
options, with one explicit rule for files with several scenarios: the flags replace the
*executor* of exactly one scenario — the only one, or the one ``--scenario NAME`` picks (several
scenarios without ``--scenario`` is an error naming them). Device, checks, tags, start time,
graceful stop and thresholds stay as the file says; the other scenarios run unchanged.

Which executor the flags make (first rule that matches):

1. ``--rate R`` with ``--stage``: ramping-arrival-rate, starting at R, stage targets are rates.
2. ``--rate R``: constant-arrival-rate at R for ``--duration`` (or the scenario's duration).
3. ``--stage`` on an arrival-rate scenario: ramping-arrival-rate, stage targets are rates
   (start rate as the file says, else 0); on any other scenario: ramping-vus, starting at
   ``--vus`` (default 1), stage targets are VUs — k6's ``--stage``.
4. ``--iterations N``: per-vu-iterations, N iterations in all shared over ``--vus`` devices
   (default 1; N must divide evenly, scfleet has no shared-iterations), max ``--duration``
   (default 10m, k6's).
5. ``--vus`` (with or without ``--duration``): constant-vus, k6's ``--vus 10 --duration 30s``.
6. ``--duration`` alone: the scenario keeps its executor with this duration (constant
   executors) or max duration (per-vu-iterations); a ramping scenario needs ``--stage``.

Arrival-rate executors keep ``time_unit`` and the device pool from the file (``--vus`` sets
``pre_allocated_devices`` there); the values are checked as if the file had them.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from scfleet_core.errors import ConfigError
from simulator.durations import parse_duration
from simulator.executors import EXECUTOR_KINDS, Stage

#: Executor keys a quick flag replaces; everything else of the scenario table is kept.
EXECUTOR_KEYS = (
    "executor",
    "rate",
    "duration",
    "start_rate",
    "stages",
    "vus",
    "start_vus",
    "iterations",
    "max_duration",
    "graceful_ramp_down",
    "pre_allocated_devices",
    "max_devices",
    "time_unit",
)


@dataclass(frozen=True)
class QuickFlags:
    vus: int | None = None
    duration: float | None = None
    iterations: int | None = None
    rate: float | None = None
    stages: tuple[Stage, ...] = ()
    scenario: str | None = None

    @property
    def given(self) -> bool:
        return any(
            v is not None for v in (self.vus, self.duration, self.iterations, self.rate)
        ) or bool(self.stages)


# --------------------------------------------------------------------------- argparse


def _positive_int(flag: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
        return value

    parse.__name__ = flag
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):  # 'inf', '1e400', 'nan': not "positive", but not a number
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration > 0, got {text!r}")
    return value


def _stage(text: str) -> Stage:
    duration, sep, target = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected DURATION:TARGET like 30s:50, got {text!r}")
    try:
        seconds = parse_duration(duration)
        value = float(target)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected DURATION:TARGET like 30s:50, got {text!r}"
        ) from None
    if not math.isfinite(value):  # '1e400' read as inf: "must be >= 0" was no explanation
        raise argparse.ArgumentTypeError(f"target must be a finite number, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"target must be >= 0, got {text!r}")
    return Stage(seconds, value)


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


_positive_float.__name__ = "number"
_duration.__name__ = "duration"
_stage.__name__ = "stage"
_env_pair.__name__ = "KEY=VALUE"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The quick flags and ``-e``, shared by ``scfleet run`` and ``scfleet inspect``."""
    g = p.add_argument_group("quick flags (k6's; they replace one scenario's executor, see README)")
    g.add_argument("--vus", type=_positive_int("vus"), metavar="N", help="devices (k6 VUs)")
    g.add_argument("--duration", type=_duration, metavar="D", help="e.g. 30s, 5m")
    g.add_argument("--iterations", type=_positive_int("iterations"), metavar="N")
    g.add_argument("--rate", type=_positive_float, metavar="R", help="iterations per time_unit")
    g.add_argument(
        "--stage",
        dest="stages",
        type=_stage,
        action="append",
        default=[],
        metavar="D:T",
        help="repeatable ramp stage, e.g. --stage 30s:50 --stage 1m:50",
    )
    g.add_argument("--scenario", metavar="NAME", help="the scenario the quick flags replace")
    p.add_argument(
        "-e",
        "--env",
        dest="env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="variable for ${KEY} in the scenario file (beats the environment)",
    )


def from_args(args: argparse.Namespace) -> QuickFlags:
    return QuickFlags(
        vus=args.vus,
        duration=args.duration,
        iterations=args.iterations,
        rate=args.rate,
        stages=tuple(args.stages),
        scenario=args.scenario,
    )


def env_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The environment ``${VAR}`` reads: the process's, then every ``-e KEY=VALUE``."""
    env = dict(os.environ)
    env.update(dict(args.env))
    return env


# --------------------------------------------------------------------------- applying


def _pick(scenarios: Mapping[str, Any], q: QuickFlags, source: str) -> str:
    names = list(scenarios)
    if q.scenario is not None:
        if q.scenario not in scenarios:
            raise ConfigError(
                f"--scenario {q.scenario!r}: no such scenario (have: {', '.join(names)})",
                source=source,
            )
        return q.scenario
    if len(names) != 1:
        raise ConfigError(
            f"quick flags replace one scenario's executor and the file has {len(names)} "
            f"({', '.join(names)}); pick one with --scenario NAME",
            source=source,
        )
    return names[0]


def apply(data: MutableMapping[str, Any], q: QuickFlags, source: str) -> str | None:
    """Rewrite the chosen scenario's executor keys in the raw document; returns its name."""
    if not q.given:
        if q.scenario is not None:
            raise ConfigError(
                "--scenario is only used with --vus/--duration/--iterations/--rate/--stage",
                source=source,
            )
        return None
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, MutableMapping) or not scenarios:
        raise ConfigError("at least one [scenarios.NAME] table is required", source=source)
    name = _pick(scenarios, q, source)
    old = scenarios[name]
    if not isinstance(old, MutableMapping):
        raise ConfigError("expected a table", source=source, key=f"scenarios.{name}")
    kind = old.get("executor")
    new = _executor(old, kind, q, source, name)
    for key in EXECUTOR_KEYS:
        old.pop(key, None)
    old.update(new)
    return name


def _stages(stages: Sequence[Stage]) -> list[dict[str, float]]:
    return [{"duration": s.duration, "target": s.target} for s in stages]


def _executor(
    old: Mapping[str, Any], kind: Any, q: QuickFlags, source: str, name: str
) -> dict[str, Any]:
    spec = EXECUTOR_KINDS.get(kind) if isinstance(kind, str) else None
    open_model = spec is not None and spec.open_model
    ramps = spec is not None and spec.ramps
    length_key = spec.duration_key if spec is not None else None

    def pool(rate: float) -> dict[str, Any]:
        out: dict[str, Any] = {"time_unit": old.get("time_unit", "1s")}
        if open_model:
            out["pre_allocated_devices"] = old.get("pre_allocated_devices", 1)
            if "max_devices" in old:
                out["max_devices"] = old["max_devices"]
        else:
            out["pre_allocated_devices"] = max(1, int(rate))
        if q.vus is not None:
            out["pre_allocated_devices"] = q.vus
            out["max_devices"] = max(q.vus, out.get("max_devices", q.vus))
        return out

    def fixed_duration(flag: str) -> Any:
        if q.duration is not None:
            return q.duration
        if length_key == "duration" and "duration" in old:
            return old["duration"]
        raise ConfigError(
            f"{flag} needs --duration (scenario {name!r} is {kind} without a fixed duration)",
            source=source,
        )

    if q.iterations is not None and (q.rate is not None or q.stages):
        raise ConfigError("--iterations cannot be combined with --rate or --stage", source=source)
    if q.rate is not None and q.stages:
        return {
            "executor": "ramping-arrival-rate",
            "start_rate": q.rate,
            "stages": _stages(q.stages),
            **pool(max(s.target for s in q.stages)),
        }
    if q.rate is not None:
        return {
            "executor": "constant-arrival-rate",
            "rate": q.rate,
            "duration": fixed_duration("--rate"),
            **pool(q.rate),
        }
    if q.stages and q.duration is not None:
        raise ConfigError(
            "--duration cannot be combined with --stage (the stages give the length)",
            source=source,
        )
    if q.stages:
        if open_model:
            start = old.get("start_rate", 0) if ramps else 0
            return {
                "executor": "ramping-arrival-rate",
                "start_rate": start,
                "stages": _stages(q.stages),
                **pool(max(s.target for s in q.stages)),
            }
        for s in q.stages:
            if s.target != int(s.target):
                raise ConfigError(
                    f"--stage target {s.target:g}: VUs must be whole numbers", source=source
                )
        out: dict[str, Any] = {
            "executor": "ramping-vus",
            "start_vus": q.vus if q.vus is not None else 1,
            "stages": _stages(q.stages),
        }
        if ramps and "graceful_ramp_down" in old:
            out["graceful_ramp_down"] = old["graceful_ramp_down"]
        return out
    if q.iterations is not None:
        vus = q.vus or 1
        if q.iterations % vus:
            raise ConfigError(
                f"--iterations {q.iterations} does not divide evenly over --vus {vus} "
                "(scfleet runs per-vu-iterations; k6's shared-iterations is not supported)",
                source=source,
            )
        return {
            "executor": "per-vu-iterations",
            "vus": vus,
            "iterations": q.iterations // vus,
            "max_duration": q.duration if q.duration is not None else "10m",
        }
    if q.vus is not None:
        return {"executor": "constant-vus", "vus": q.vus, "duration": fixed_duration("--vus")}
    # --duration alone: same executor, new length
    if length_key is not None:
        return {**{k: old[k] for k in EXECUTOR_KEYS if k in old}, length_key: q.duration}
    raise ConfigError(
        f"--duration: scenario {name!r} is {kind}, which ramps through stages; "
        "give --stage D:T instead",
        source=source,
    )
