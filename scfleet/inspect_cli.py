"""``scfleet inspect CONFIG``: what ``scfleet run`` would do, without contacting anything.

It loads the file exactly as ``run`` does (``${VAR}``, ``-e``, ``--set``, quick flags,
``--time-scale``, ``--target``, threshold validation), so a file that ``inspect`` accepts
passes the same checks at ``run``, and a bad one fails with the same one-line error and exit
code. Then it prints each scenario's schedule and the parsed thresholds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

from scfleet_core.cli import Subparsers
from scfleet_core.errors import EXIT_OK


def register(sub: Subparsers) -> None:
    from scfleet.run_cli import add_k6_flags

    p = sub.add_parser(
        "inspect",
        help="validate a scenario file and show its schedule and thresholds",
        description="Load a scenario file as 'scfleet run' would (same flags, same errors) and "
        "print the configuration, each scenario's schedule and the thresholds; nothing is "
        "started or contacted.",
    )
    p.add_argument("config", help="scenario file (TOML)")
    p.add_argument("--target", metavar="URL", help="base URL of the server under test")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="F")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    add_k6_flags(p)
    p.set_defaults(func=inspect_command)


@dataclass(frozen=True)
class ScenarioPlan:
    """One scenario's schedule as the run would follow it (after --time-scale)."""

    name: str
    executor: str
    device: str
    start_s: float
    duration_s: float  # the executor's scheduled length
    graceful_stop_s: float
    expected_iterations: int | None  # None: closed model, depends on response times
    max_iterations: int | None  # an upper bound when one is known
    peak_devices: int
    pre_allocated_devices: int | None
    think_time_s: float


@dataclass(frozen=True)
class ThresholdInfo:
    metric_key: str
    metric: str
    metric_type: str | None
    expression: str
    aggregation: str
    op: str
    #: None for an infinite or NaN limit (k6 takes ``avg<Inf``), which JSON cannot hold
    value: float | None
    abort_on_fail: bool
    delay_abort_eval_s: float


@dataclass(frozen=True)
class Inspection:
    source: str
    target: str | None  # None: the embedded reference server
    time_scale: float
    run_seconds: float  # scheduled length of the whole run, without graceful stops
    peak_devices: int  # most devices at once over the run (executors.device_plan, k6's max VUs)
    scenarios: tuple[ScenarioPlan, ...]
    thresholds: tuple[ThresholdInfo, ...]
    config: dict[str, Any]
    #: --no-thresholds: the thresholds are off (``thresholds`` lists those that would load)
    no_thresholds: bool = False
    #: --no-thresholds: the one-line error the file stops with without it (None: it loads)
    thresholds_refused: str | None = None


def plan_scenario(sc: Any) -> ScenarioPlan:
    ex = sc.executor
    return ScenarioPlan(
        name=sc.name,
        executor=ex.kind,
        device=sc.device.kind,
        start_s=sc.start_time,
        duration_s=ex.total_duration(),
        graceful_stop_s=sc.graceful_stop,
        expected_iterations=ex.expected_iterations(),
        max_iterations=ex.iteration_bound(sc.think_time),
        peak_devices=ex.device_bound(),
        pre_allocated_devices=ex.pre_allocated(),
        think_time_s=sc.think_time,
    )


def inspect_config(args: argparse.Namespace) -> Inspection:
    from scfleet.run_cli import load_args
    from simulator.executors import device_plan
    from simulator.metrics import BUILTIN
    from simulator.run.runner import load_all_accounts

    cfg = load_args(args)  # as run loads it: [boards] checked too
    refused = None
    if cfg.no_thresholds:  # what a run without --no-thresholds would say of them
        from scfleet_core.errors import ConfigError

        try:
            load_args(argparse.Namespace(**{**vars(args), "no_thresholds": False}))
        except ConfigError as exc:
            refused = str(exc)
    if cfg.target.url is not None:
        load_all_accounts(cfg)  # the same accounts-file errors as run (a local read only)
    if args.summary_export:
        from scfleet.run_cli import check_export

        check_export(args.summary_export)
    plans = tuple(plan_scenario(sc) for sc in cfg.scenarios)
    ths = tuple(
        ThresholdInfo(
            metric_key=t.metric_key,
            metric=t.metric,
            metric_type=BUILTIN.get(t.metric, (None, ""))[0],
            expression=t.expr.source,
            aggregation=t.expr.aggregation,
            op=t.expr.op,
            value=t.expr.value if math.isfinite(t.expr.value) else None,
            abort_on_fail=t.abort_on_fail,
            delay_abort_eval_s=t.delay_abort_eval,
        )
        for t in cfg.thresholds
    )
    return Inspection(
        source=cfg.source,
        target=cfg.target.url,
        time_scale=args.time_scale,
        run_seconds=cfg.total_duration,
        peak_devices=device_plan(cfg.scenarios).possible,
        scenarios=plans,
        thresholds=ths,
        config=json.loads(json.dumps(dict(cfg.raw), default=str)),
        no_thresholds=cfg.no_thresholds,
        thresholds_refused=refused,
    )


def render(ins: Inspection) -> str:
    from simulator.durations import format_duration

    def fd(seconds: float) -> str:
        return format_duration(seconds) if seconds else "0s"

    lines = [
        f"  config: {ins.source}"
        + (f" (time scale {ins.time_scale:g})" if ins.time_scale != 1 else ""),
        f"  target: {ins.target or 'embedded reference server (started by run)'}",
        f"  run length: {fd(ins.run_seconds)} scheduled, peak devices {ins.peak_devices}",
        "",
        "  SCENARIOS",
    ]
    for p in ins.scenarios:
        if p.expected_iterations is not None:
            its = f"{p.expected_iterations} iterations expected"
        elif p.max_iterations is not None:
            its = f"at most {p.max_iterations} iterations"
        else:
            its = "iterations depend on response times (closed model)"
        devices = f"{p.peak_devices} devices at most"
        if p.pre_allocated_devices is not None:
            devices += f" ({p.pre_allocated_devices} pre-allocated)"
        lines.append(f"    {p.name}: {p.executor}, {p.device} devices")
        lines.append(
            f"      start {fd(p.start_s)}, runs {fd(p.duration_s)}, "
            f"graceful stop {fd(p.graceful_stop_s)}"
            + (f", think time {fd(p.think_time_s)}" if p.think_time_s else "")
        )
        lines.append(f"      {its}; {devices}")
    lines += ["", "  THRESHOLDS"]
    if ins.no_thresholds:
        lines.append(
            "    off (--no-thresholds): none is judged, none fails or aborts the run; the "
            "stage table judges by its defaults"
        )
        if ins.thresholds_refused:
            lines.append(
                f"    without --no-thresholds the file is refused: {ins.thresholds_refused}"
            )
        if ins.thresholds:
            lines.append("    as loaded (not judged):")
    if not ins.thresholds:
        lines.append("    (none)")
    for t in ins.thresholds:
        extra = ""
        if t.abort_on_fail:
            extra = f"  abort on fail (after {fd(t.delay_abort_eval_s)})"
        lines.append(
            f"    {t.metric_key} ({t.metric_type or 'custom'}): {t.aggregation} {t.op} "
            f"{t.expression.partition(t.op)[2].strip() if t.value is None else f'{t.value:g}'}"
            f"{extra}"
        )
    scaled = " (durations before --time-scale)" if ins.time_scale != 1 else ""
    lines += ["", f"  CONFIGURATION (validated, as run{scaled})"]
    lines += ["    " + ln for ln in json.dumps(ins.config, indent=2).splitlines()]
    return "\n".join(lines) + "\n"


def inspect_command(args: argparse.Namespace) -> int:
    ins = inspect_config(args)
    if args.json:
        sys.stdout.write(json.dumps(asdict(ins), indent=2) + "\n")
    else:
        sys.stdout.write(render(ins))
    return EXIT_OK
