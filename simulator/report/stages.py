"""Stage by stage: what each load level achieved, where the server stopped coping, and why.

A run's timeline is cut at the stage boundaries of :func:`simulator.executors.stage_windows`
(a tick belongs to the stage holding its midpoint; the graceful stop's requests, started in
the last stage, to it). For each stage the table gives offered vs
achieved rate, exact p50/p95/p99 from a per-stage HDR histogram (recorded live by
:class:`StageRecorder`), error rate, dropped and cut iterations and the sampled
server/generator resources. From the table, per scenario: the **knee**, a **verdict** and a **bottleneck** hint.
The rules are the constants below; README.md ("Reading the verdict") states them in prose.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.metrics import Histogram
from simulator.metrics.thresholds import ThresholdExpr, parse_expression, parse_metric_key
from simulator.run.monitoring import GEN_CPU_SATURATED_PCT as GEN_CPU_SATURATED_PCT
from simulator.run.monitoring import GEN_DROPPED_SHARE as GEN_DROPPED_SHARE
from simulator.run.monitoring import GEN_LOOP_LAG_MS as GEN_LOOP_LAG_MS
from simulator.run.stage_recorder import StageRecorder as StageRecorder
from simulator.run.stage_recorder import after_schedule, last_stage
from simulator.run.stage_recorder import locate as locate

# --------------------------------------------------------------------------- the rules
#: Server CPU counts as saturated at this share: of all cores for the process tree, of one
#: core for its busiest process (a Python process is held to one core by the GIL), or of the
#: whole machine from Prometheus.
CPU_SATURATED_PCT = 85.0
#: The generator is saturated above GEN_CPU_SATURATED_PCT of CPU or GEN_LOOP_LAG_MS of loop
#: lag (their home is the generator's sampler, simulator.run.monitoring; workers rank by them);
#: with workers also when the worst worker dropped GEN_DROPPED_SHARE of its iterations or its
#: p99 start lag reached GEN_LOOP_LAG_MS (a one-process run has no such columns).
#: A lagging (not CPU-bound) generator is named the bottleneck only when its lag is at least
#: this share of the stage's median latency: a few ms of lag on a host shared with other work
#: cannot explain seconds of latency, so it does not hide a saturated server.
GEN_LAG_SHARE_OF_P50 = 0.1
#: A stage with at least this error rate is a cliff, not graceful degradation. Iterations cut by
#: the graceful stop fail their stage but are not a cliff: a request slower than the stop is
#: latency, and an overloaded server that only slows down (the AI route at 14/s) is graceful.
CLIFF_ERROR_RATE = 0.10
#: Stages shorter than this (s) are too short for their achieved rate to be compared.
MIN_RATE_SECONDS = 2.0
#: Achieved req/s below this share of an earlier stage at no higher offered load: a cliff.
CLIFF_THROUGHPUT_SHARE = 0.5
#: Server memory is "climbing" when its peak RSS in a stage is ≥ this ratio of the first
#: stage's peak and at least MEM_CLIMB_MB more, or the host's used memory ≥ NODE_MEM_PCT.
MEM_CLIMB_RATIO = 1.25
MEM_CLIMB_MB = 32.0
NODE_MEM_PCT = 90.0
#: Connection errors (no HTTP answer) are the bottleneck when they are at least this share of
#: a stage's failures and the stage's error rate is at least CONN_ERROR_MIN_RATE.
CONN_ERROR_SHARE = 0.5
CONN_ERROR_MIN_RATE = 0.01
#: Judged per stage when the run has no threshold that applies per stage (seed §1/§3).
DEFAULT_THRESHOLDS = (("http_req_failed", "rate<0.01"), ("http_req_duration", "p(95)<2000"))

#: Metrics a threshold may name and still be evaluated per stage.
PER_STAGE_METRICS = {
    "http_req_duration",
    "http_req_failed",
    "http_reqs",
    "dropped_iterations",
    "iterations",
}


# --------------------------------------------------------------------------- the table


@dataclass
class StageRow:
    scenario: str
    index: int
    label: str
    unit: str
    start: float
    end: float
    offered: float  # mean target over the stage (a linear ramp's midpoint)
    target_from: float = 0.0
    target_to: float = 0.0
    seconds: float = 0.0  # ticked time inside the stage (0: never reached)
    requests: int = 0
    failed: int = 0
    dropped: int = 0
    #: of ``dropped``, those that found every device busy at ``max_devices`` (a configuration
    #: limit, k6's "Insufficient VUs"; 0 in a folder from before it was counted)
    pool_full: int = 0
    iterations: int = 0
    #: iterations cut by the graceful stop with a request in flight (k6's interrupted_iterations
    #: less ``think_cut``); as in k6 their requests are in no other figure, so the stage is
    #: judged on them too
    cut: int = 0
    #: iterations cut while sleeping their think time: every request answered, not judged
    think_cut: int = 0
    #: iterations whose Python device raised or returned False: judged against the failure
    #: budget, as failed requests are (their requests may never have been sent)
    iteration_errors: int = 0
    #: their share broke the failure budget (set by the judgement)
    raised_over_budget: bool = False
    conn_errors: int = 0
    achieved_rps: float = 0.0
    achieved_iters: float = 0.0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    avg_ms: float | None = None
    exact_percentiles: bool = True
    active_max: int = 0
    server_alive: float | None = None
    server_cpu: float | None = None
    server_cpu_max: float | None = None
    server_hottest: float | None = None
    #: the busiest process's CPU plus its wait for a core (monitoring: ``cpu_demand_hottest``)
    server_demand_hottest: float | None = None
    server_rss_mb: float | None = None
    cpu_count: float | None = None
    node_cpu: float | None = None
    node_mem_pct: float | None = None
    gen_cpu: float | None = None
    gen_lag_ms: float | None = None
    #: with workers: the worst worker's share of its iterations dropped, its p99 start lag
    gen_dropped_share: float | None = None
    gen_start_lag_ms: float | None = None
    #: with workers: the process nearest saturation in most of the stage's ticks
    gen_worker: str | None = None
    thresholds_ok: bool | None = None
    failed_thresholds: list[str] = field(default_factory=list)

    @property
    def reached(self) -> bool:
        return self.seconds > 0

    @property
    def cut_share(self) -> float:
        """Of the stage's iterations (finished or cut), the share cut."""
        n = self.iterations + self.cut
        return self.cut / n if n else 0.0

    @property
    def raised_share(self) -> float:
        """Of the stage's iterations, the share whose Python device raised or returned False
        (one raised and then cut in its think time is counted as raised, not as finished)."""
        n = max(self.iterations, self.iteration_errors)
        return self.iteration_errors / n if n else 0.0

    @property
    def generator_saturated(self) -> bool:
        return bool(self.generator_criteria()[0])

    def generator_criteria(self) -> tuple[list[str], list[str]]:
        """(the saturation criteria that fired, each with its figure and threshold; the other
        figures the stage has) — the one wording of why the generator was called saturated."""
        cpu, lag = self.gen_cpu, self.gen_lag_ms
        drop, start = self.gen_dropped_share, self.gen_start_lag_ms
        fired: list[str] = []
        other: list[str] = []
        if (cpu or 0) >= GEN_CPU_SATURATED_PCT:
            fired.append(f"CPU {cpu:.0f}% ≥ {GEN_CPU_SATURATED_PCT:g}%")
        else:
            other.append(f"CPU {cpu or 0:.0f}%")
        if (lag or 0) >= GEN_LOOP_LAG_MS:
            fired.append(f"loop lag {lag:.1f} ms ≥ {GEN_LOOP_LAG_MS:g} ms")
        elif lag is not None:
            other.append(f"loop lag {lag:.1f} ms")
        if (drop or 0) >= GEN_DROPPED_SHARE:
            fired.append(f"dropped {(drop or 0) * 100:.1f}% ≥ {GEN_DROPPED_SHARE * 100:g}%")
        if (start or 0) >= GEN_LOOP_LAG_MS:
            fired.append(f"start lag p99 {start:.0f} ms ≥ {GEN_LOOP_LAG_MS:g} ms")
        return fired, other

    def generator_text(self) -> str:
        """Why the generator counts as saturated, in one line: the criteria that fired first
        (a hint that showed only CPU 3 % and loop lag 2.0 ms hid the start lag that fired)."""
        fired, other = self.generator_criteria()
        parts = [", ".join(fired), ", ".join(other), self.gen_worker or ""]
        return "generator saturated (" + "; ".join(p for p in parts if p) + ")"


@dataclass
class Assessment:
    scenario: str
    knee: int | None  # stage index; None: not even the first stage met the thresholds
    knee_label: str
    verdict: str  # "held" | "graceful" | "cliff" | "no data"
    reason: str
    #: kind: crash, device_code, generator, connection, server_cpu, server_memory,
    #: device_pool, none
    bottleneck: str
    hint: str
    generator_warning: bool = False
    generator_worker: str = ""  # with workers: the one nearest saturation where it was
    #: the criteria that fired in the first stage saturated, with its label ("start lag p99
    #: 303 ms ≥ 5 ms at 20 iters/s")
    generator_reason: str = ""

    @property
    def generator_warning_text(self) -> str:
        """The warning beside the table (text summary and HTML): one wording."""
        if not self.generator_warning:
            return ""
        who = f" ({self.generator_worker})" if self.generator_worker else ""
        why = f": {self.generator_reason}" if self.generator_reason else ""
        return (
            f"the generator was saturated in some stage{who}{why}; its figures may be the "
            "generator's, not the server's"
        )


def _mean(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _max(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return max(vals) if vals else None


def _min(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return min(vals) if vals else None


def build_rows(
    recorder: StageRecorder,
    timeline: Sequence[Mapping[str, Any]],
    thresholds: Sequence[tuple[str, str]] = (),
    duration: float | None = None,
) -> list[StageRow]:
    """The stage table, from the timeline and (when recorded) the per-stage histograms.
    ``duration``: the whole run's seconds (summary.json's ``testRunDurationMs``), over which a
    counter's ``rate`` threshold is taken; None while the run goes (a live page)."""
    rows: list[StageRow] = []
    for name, windows in recorder.windows.items():
        last = last_stage(windows)
        through: Counter[str] = Counter()  # the scenario's counts up to each stage's end
        for w in windows:
            if w.end <= w.start:
                continue
            row = StageRow(
                name,
                w.index,
                w.label,
                w.unit,
                w.start,
                w.end,
                (w.target_from + w.target_to) / 2,
                w.target_from,
                w.target_to,
            )
            ticks = [
                p
                for p in timeline
                if name in p.get("scenarios", {}) and locate([w], p["t"], p["span"]) is not None
            ]
            # the graceful stop's ticks: the requests finishing there started in the last stage
            late = (
                [
                    p
                    for p in timeline
                    if name in p.get("scenarios", {}) and after_schedule(last, p["t"], p["span"])
                ]
                if w is last
                else []
            )
            hist = recorder.hists.get((name, w.index))
            _fill(row, ticks, hist, late)
            through["http_reqs"] += row.requests
            through["dropped_iterations"] += row.dropped
            through["iterations"] += row.iterations
            _judge(row, thresholds, hist, through, duration)
            rows.append(row)
    return rows


def _fill(
    row: StageRow,
    ticks: list[Mapping[str, Any]],
    hist: Histogram | None,
    late: Sequence[Mapping[str, Any]] = (),
) -> None:
    """``late``: ticks after the schedule (the last stage's): their requests count, not their
    seconds, rates or resources."""
    if not ticks:
        return
    sc = [p["scenarios"][row.scenario] for p in ticks]
    done = [*ticks, *late]  # every tick whose requests are this stage's
    sc_done = [p["scenarios"][row.scenario] for p in done]
    row.seconds = sum(p["span"] for p in ticks)
    row.requests = sum(s["requests"] for s in sc_done)
    row.failed = sum(s["failed"] for s in sc_done)
    row.dropped = sum(s["dropped"] for s in sc_done)
    row.pool_full = sum(s.get("pool_full", 0) for s in sc_done)
    row.iterations = sum(s["iterations"] for s in sc_done)
    # not in a folder from before: 0; those cut in their think time had their answers
    row.think_cut = sum(s.get("think_cut", 0) for s in sc_done)
    row.cut = sum(s.get("interrupted", 0) for s in sc_done) - row.think_cut
    row.iteration_errors = sum(s.get("iteration_errors", 0) for s in sc_done)
    row.conn_errors = int(sum(p.get(f"conn_errors.{row.scenario}") or 0 for p in done))
    # a rate is what completed within the stage's own seconds: the stop's answers divided by
    # them read 79.7 req/s from a server that serves 50/s (and a stalled stage as held)
    # a run stopped as it started has one point of 0.000 s: no rate (it divided by zero)
    secs = row.seconds or math.inf
    row.achieved_rps = sum(s["requests"] for s in sc) / secs
    row.achieved_iters = sum(s["iterations"] for s in sc) / secs
    row.error_rate = row.failed / row.requests if row.requests else 0.0
    row.active_max = max(s["active"] for s in sc)
    if hist is not None and hist.count:
        row.p50_ms, row.p95_ms, row.p99_ms = (hist.percentile(q) / 1000 for q in (50, 95, 99))
        row.max_ms, row.avg_ms = hist.max / 1000, hist.mean / 1000
    elif row.requests:  # no histogram kept: request-weighted per-tick values (approximate)
        row.exact_percentiles = False
        n = row.requests
        for attr in ("p50_ms", "p95_ms", "p99_ms", "avg_ms"):
            setattr(row, attr, sum(s[attr] * s["requests"] for s in sc_done if s["requests"]) / n)
        row.max_ms = max(s["max_ms"] for s in sc_done)

    def series(key: str) -> list[float | None]:
        return [p.get(key) for p in ticks]

    row.server_alive = _min(series("server.alive"))
    row.server_cpu = _mean(series("server.cpu_percent"))
    row.server_cpu_max = _max(series("server.cpu_percent"))
    row.server_hottest = _mean(series("server.cpu_hottest"))
    row.server_demand_hottest = _mean(series("server.cpu_demand_hottest"))
    rss = _max(series("server.rss_bytes"))
    row.server_rss_mb = rss / 1e6 if rss is not None else None
    row.cpu_count = _max(series("server.cpu_count"))
    row.node_cpu = _mean(series("node.cpu_percent"))
    row.node_mem_pct = _max(series("node.mem_used_percent"))
    row.gen_cpu = _mean(series("gen.cpu_percent"))
    row.gen_lag_ms = _mean(series("gen.loop_lag_ms"))
    row.gen_dropped_share = _mean(series("gen.dropped_share"))
    row.gen_start_lag_ms = _mean(series("gen.start_lag_p99_ms"))
    row.gen_worker = _worst_process(ticks)


def _worst_process(ticks: Sequence[Mapping[str, Any]]) -> str | None:
    """With workers (``gen.worker``: 0 the coordinator, k worker k): the process that was
    nearest saturation in most ticks, by name; None for a one-process run."""
    named = [
        (int(p["gen.worker"]), int(p["gen.workers"]))
        for p in ticks
        if p.get("gen.worker") is not None and p.get("gen.workers")
    ]
    if not named:
        return None
    (k, parts), _n = Counter(named).most_common(1)[0]
    if k == 0:
        return "the coordinator"
    from simulator.run.workers import worker_name

    return worker_name(k - 1, parts)


#: Operators of a count threshold judged per stage, on the scenario's running total: a count is
#: a run total, and only an upper bound broken by the total so far is broken by the run's.
#: A lower bound (``http_reqs count>200``) says nothing about one stage: its share fell short
#: in every stage of a run that met it. A counter's ``rate`` is a run total too, over the whole
#: run's duration (k6: count / time spent in the test), so ``rate<N`` is ``count < N x the run's
#: seconds`` and is judged the same way; a stage's own rate would fail the quiet stages of a run
#: that met ``rate>N`` and the busy ones of a run that met ``rate<N``.
COUNT_OPS_PER_STAGE = ("<", "<=")
#: The counters a stage knows (its own share and the scenario's running total).
STAGE_COUNTERS = ("http_reqs", "dropped_iterations", "iterations")


def _stage_value(
    row: StageRow,
    metric: str,
    expr: ThresholdExpr,
    hist: Histogram | None,
    through: Mapping[str, int],
    duration: float | None,
) -> float | None:
    agg = expr.aggregation
    if metric == "http_req_duration":
        if row.p50_ms is None:
            return None
        pct = expr.percentile
        if pct is not None:
            if hist is not None and hist.count:
                return hist.percentile(pct) / 1000
            return {50.0: row.p50_ms, 95.0: row.p95_ms, 99.0: row.p99_ms}.get(pct)
        return {
            "avg": row.avg_ms,
            "med": row.p50_ms,
            "max": row.max_ms,
            "count": float(row.requests),
        }.get(agg)
    if metric == "http_req_failed":
        return row.error_rate if row.requests else None
    if metric in STAGE_COUNTERS:
        if agg == "count":
            return float(through[metric])
        if agg == "rate" and duration:
            return through[metric] / duration  # the least the run's rate can be
    return None


def _judged_per_stage(metric: str, expr: ThresholdExpr, duration: float | None) -> bool:
    if metric not in STAGE_COUNTERS or expr.aggregation not in ("count", "rate"):
        return True
    if expr.aggregation == "rate" and not duration:
        return False  # the run's length, its rate's denominator, is not known yet
    return expr.op in COUNT_OPS_PER_STAGE


def applicable(row: StageRow, metric_key: str) -> bool:
    """A threshold applies per stage when its metric is known per stage and its only tag
    filter (if any) is this stage's scenario."""
    metric, tags = parse_metric_key(metric_key)
    if metric not in PER_STAGE_METRICS:
        return False
    return all(k == "scenario" and v == row.scenario for k, v in tags)


def _judge(
    row: StageRow,
    thresholds: Sequence[tuple[str, str]],
    hist: Histogram | None,
    through: Mapping[str, int],
    duration: float | None = None,
) -> None:
    if not row.reached:
        return
    chosen = [
        (k, parse_metric_key(k)[0], parse_expression(e))
        for k, e in thresholds
        if applicable(row, k)
    ]
    chosen = [c for c in chosen if _judged_per_stage(c[1], c[2], duration)]
    if not chosen:
        chosen = [(k, k, parse_expression(e)) for k, e in DEFAULT_THRESHOLDS]
    failed = []
    for key, metric, expr in chosen:
        source = expr.source
        value = _stage_value(row, metric, expr, hist, through, duration)
        if value is not None and not expr.holds(value):
            failed.append(f"{key} {source} (stage: {value:.4g})")
    budget = _cut_budget(row, thresholds)
    if row.cut and not budget.holds(row.cut_share):
        failed.append(f"{_cut_text(row)} (budget: http_req_failed {budget.source})")
    row.raised_over_budget = bool(row.iteration_errors) and not budget.holds(row.raised_share)
    if row.raised_over_budget:
        failed.append(f"{_raised_text(row)} (budget: http_req_failed {budget.source})")
    row.failed_thresholds = failed
    row.thresholds_ok = not failed


def _cut_budget(row: StageRow, thresholds: Sequence[tuple[str, str]]) -> ThresholdExpr:
    """The share of a stage's iterations the graceful stop may cut: a cut iteration's request
    got no answer in time, a failure k6 leaves out of every figure, so the budget is the
    failures' (the run's ``http_req_failed`` rate threshold for the stage, else the default)."""
    for key, expr in thresholds:
        if applicable(row, key) and parse_metric_key(key)[0] == "http_req_failed":
            parsed = parse_expression(expr)
            if parsed.aggregation == "rate":
                return parsed
    return parse_expression(dict(DEFAULT_THRESHOLDS)["http_req_failed"])


def _raised_text(r: StageRow) -> str:
    return (
        f"{r.iteration_errors:,} of {max(r.iterations, r.iteration_errors):,} iterations at "
        f"{r.label} raised or returned False ({r.raised_share * 100:.1f}%)"
    )


def _cut_text(r: StageRow) -> str:
    return (
        f"{r.cut:,} of {r.cut + r.iterations:,} iterations at {r.label} were cut by the graceful "
        f"stop ({r.cut_share * 100:.1f}%, their requests in no figure)"
    )


def stage_table(
    recorder: StageRecorder,
    timeline: Sequence[Mapping[str, Any]],
    thresholds: Sequence[tuple[str, str]] = (),
    duration: float | None = None,
) -> tuple[list[StageRow], list[Assessment]]:
    """``duration``: as :func:`build_rows`."""
    rows = build_rows(recorder, timeline, thresholds, duration)
    by: dict[str, list[StageRow]] = {}
    for r in rows:
        by.setdefault(r.scenario, []).append(r)
    return rows, [assess(rs) for rs in by.values()]


# --------------------------------------------------------------------------- verdict


def assess(rows: Sequence[StageRow]) -> Assessment:
    """Knee, verdict and bottleneck for one scenario's stages (in time order)."""
    name = rows[0].scenario if rows else ""
    reached = [r for r in rows if r.reached]
    gen_warn = any(r.generator_saturated for r in reached)
    gen_who = next((r.gen_worker for r in reached if r.generator_saturated and r.gen_worker), "")
    gen_why = next(
        (
            f"{', '.join(r.generator_criteria()[0])} at {r.label}"
            for r in reached
            if r.generator_saturated
        ),
        "",
    )
    gen = (gen_warn, gen_who, gen_why)
    if not reached:
        return Assessment(name, None, "-", "no data", "no stage was reached", "none", "", *gen)
    if not any(r.requests or r.iterations for r in reached):
        # a stage with no samples passes its thresholds (as in k6), but "the limit is higher"
        # needs some: a run stopped before its first request, or whose requests never ended
        why = "no request or iteration completed in any stage"
        return Assessment(name, None, "-", "no data", why, "none", "", *gen)
    # the ascending part: stages until the target first drops (ramp-down excluded)
    ascending: list[StageRow] = []
    peak = -math.inf
    for r in reached:
        hi = max(r.target_from, r.target_to)
        if ascending and r.target_to < peak:
            break
        ascending.append(r)
        peak = max(peak, hi)
    first_fail = next((i for i, r in enumerate(ascending) if not r.thresholds_ok), None)
    if first_fail is None:
        knee_row: StageRow | None = ascending[-1]
    else:
        knee_row = ascending[first_fail - 1] if first_fail > 0 else None
    knee = knee_row.index if knee_row else None
    knee_label = knee_row.label if knee_row else f"below {ascending[0].label}"
    after = [r for r in reached if knee_row is None or r.index > knee_row.index]

    verdict, reason = (
        "held",
        (f"every stage up to {ascending[-1].label} met the thresholds; the limit is higher"),
    )
    if first_fail is not None:
        verdict, reason = "graceful", _graceful_reason(reached, ascending[first_fail])
    cliff = _cliff(ascending, after)
    if cliff:
        verdict, reason = "cliff", cliff
    focus = ascending[first_fail] if first_fail is not None else ascending[-1]
    if cliff:  # a crash may show only after the first failing stage
        focus = next((r for r in after if r.server_alive == 0), focus)
    kind, hint = bottleneck(focus, reached[0], verdict)
    return Assessment(name, knee, knee_label, verdict, reason, kind, hint, *gen)


def _graceful_reason(reached: Sequence[StageRow], fail: StageRow) -> str:
    base = reached[0]
    p95 = (
        f"p95 {base.p95_ms:.0f} → {fail.p95_ms:.0f} ms"
        if base.p95_ms is not None and fail.p95_ms is not None
        else "latency rose"
    )
    worst_err = max(r.error_rate for r in reached)
    if fail.raised_over_budget and not fail.requests:
        return f"{_raised_text(fail)}; no request was sent"
    cut = f"; {_cut_text(fail)}" if fail.cut else ""
    if fail.raised_over_budget:
        cut += f"; {_raised_text(fail)}"
    held = f"throughput held ({fail.achieved_rps:.1f} req/s)"
    if fail.requests and not fail.achieved_rps:  # nothing completed within its seconds
        held = f"its {fail.requests:,} requests were answered only in the graceful stop"
    return (
        f"thresholds failed from {fail.label} ({p95}) while errors stayed at "
        f"{worst_err * 100:.1f}% and {held}{cut}"
    )


def _cliff(ascending: Sequence[StageRow], after: Sequence[StageRow]) -> str:
    """A crash or an error jump in any later stage; a throughput collapse only while the load
    still rises (a ramp-down delivers less by design) and between stages long enough for
    their rate to mean something."""
    rising = {r.index for r in ascending}
    for r in after:
        if r.server_alive == 0:
            return f"the server process exited during {r.label}"
        if r.requests and r.error_rate >= CLIFF_ERROR_RATE:
            return f"errors jumped to {r.error_rate * 100:.1f}% at {r.label}"
        if r.index not in rising or r.seconds < MIN_RATE_SECONDS:
            continue
        earlier = [
            e
            for e in ascending
            if e.index < r.index
            and e.offered <= r.offered + 1e-9
            and e.achieved_rps > 0
            and e.seconds >= MIN_RATE_SECONDS
        ]
        if earlier:
            best = max(earlier, key=lambda e: e.achieved_rps)
            if r.achieved_rps < CLIFF_THROUGHPUT_SHARE * best.achieved_rps:
                return (
                    f"throughput collapsed from {best.achieved_rps:.1f} req/s ({best.label}) "
                    f"to {r.achieved_rps:.1f} req/s ({r.label})"
                )
    return ""


def _generator_explains(r: StageRow) -> bool:
    """Whether the generator's saturation can account for the stage's figures."""
    if (r.gen_cpu or 0) >= GEN_CPU_SATURATED_PCT or r.p50_ms is None:
        return True
    return (r.gen_lag_ms or 0) >= GEN_LAG_SHARE_OF_P50 * r.p50_ms


def bottleneck(r: StageRow, first: StageRow, verdict: str = "") -> tuple[str, str]:
    """(kind, one-line hint) for the stage where the server stopped coping, by priority."""
    if r.server_alive == 0:
        return "crash", f"server process exited during {r.label} (crash)"
    if r.raised_over_budget and not r.failed:  # every request answered: the device's own code
        return "device_code", (
            f"the device's code: {_raised_text(r)} (the summary's notes give the messages)"
        )
    if r.generator_saturated and _generator_explains(r):
        return "generator", (
            f"{r.generator_text()}: the figures may be the generator's, not the server's"
        )
    if (
        r.failed
        and r.conn_errors >= CONN_ERROR_SHARE * r.failed
        and r.error_rate >= CONN_ERROR_MIN_RATE
    ):
        return "connection", (
            f"connection errors: {r.conn_errors} requests got no HTTP answer at {r.label} "
            "(refused, reset or timed out)"
        )
    cores = r.cpu_count or 1.0
    tree_sat = r.server_cpu is not None and r.server_cpu >= CPU_SATURATED_PCT * cores
    # on a host shared with other work a CPU-bound process gets only part of a core: it is
    # saturated when it ran or waited for a core nearly all the time, whatever it got
    hot_sat = any(
        v is not None and v >= CPU_SATURATED_PCT
        for v in (r.server_hottest, r.server_demand_hottest)
    )
    node_sat = r.node_cpu is not None and r.node_cpu >= CPU_SATURATED_PCT
    if tree_sat or hot_sat or node_sat:
        parts = []
        if r.server_cpu is not None:
            parts.append(f"server processes {r.server_cpu:.0f}% on {cores:.0f} cores")
        if r.server_hottest is not None:
            parts.append(f"busiest process {r.server_hottest:.0f}%")
        if r.server_demand_hottest is not None and (r.server_hottest or 0) < CPU_SATURATED_PCT:
            parts.append(f"runnable {r.server_demand_hottest:.0f}% of the time")
        if r.node_cpu is not None:
            parts.append(f"host {r.node_cpu:.0f}% of all cores")
        return "server_cpu", f"server CPU saturated at {r.label} ({', '.join(parts)})"
    climbing = (
        r.server_rss_mb is not None
        and first.server_rss_mb is not None
        and r.server_rss_mb >= MEM_CLIMB_RATIO * first.server_rss_mb
        and r.server_rss_mb - first.server_rss_mb >= MEM_CLIMB_MB
    )
    if climbing or (r.node_mem_pct is not None and r.node_mem_pct >= NODE_MEM_PCT):
        what = (
            f"RSS {first.server_rss_mb:.0f} → {r.server_rss_mb:.0f} MB"
            if climbing
            else f"host memory {r.node_mem_pct:.0f}% used"
        )
        return "server_memory", f"server memory climbing at {r.label} ({what})"
    # drops by an exhausted device pool (every device busy at max_devices), at least
    # GEN_DROPPED_SHARE of the stage's started + dropped: the run's configuration, not the
    # server or the generator
    if r.pool_full and r.pool_full >= GEN_DROPPED_SHARE * (r.iterations + r.dropped):
        return "device_pool", (
            f"device pool exhausted at {r.label}: max_devices reached ({r.active_max:,} devices "
            f"busy), {r.pool_full:,} iterations dropped — raise max_devices"
        )
    if r.server_cpu is None and r.node_cpu is None:
        return "none", (
            "no server resource data (run against the embedded server, or give --server-pid "
            "or [monitor] prometheus_url)"
        )
    cpu = r.server_cpu if r.server_cpu is not None else r.node_cpu
    if verdict == "held":
        return "none", f"no bottleneck reached (server CPU {cpu:.0f}% at {r.label})"
    return "none", (
        f"no resource saturated at {r.label} (server CPU {cpu:.0f}%): look at worker pools, "
        "queues, locks or the network"
    )


# --------------------------------------------------------------------------- output


def to_json(rows: Sequence[StageRow], assessments: Sequence[Assessment]) -> dict[str, Any]:
    """The ``stages`` key of summary.json."""
    return {
        "rows": [asdict(r) | {"reached": r.reached} for r in rows],
        "scenarios": {a.scenario: asdict(a) for a in assessments},
    }


def _f(v: float | None, fmt: str = ".0f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def table_cells(r: StageRow) -> list[str]:
    """One row as text cells (shared by the text summary and the HTML report)."""
    mark = {True: "✓", False: "✗", None: "·"}[r.thresholds_ok]
    approx = "" if r.exact_percentiles else "~"
    return [
        mark,
        f"{r.index + 1}",
        r.label,
        _f(r.offered, ".3g"),
        f"{r.achieved_rps:.1f}" if r.reached else "-",
        approx + _f(r.p50_ms, ".1f"),
        approx + _f(r.p95_ms, ".1f"),
        approx + _f(r.p99_ms, ".1f"),
        (f"{r.error_rate * 100:.2f}%" + (f" +{r.cut:,} cut" if r.cut else ""))
        if r.reached
        else "-",
        str(r.dropped) if r.reached else "-",
        _f(r.server_cpu if r.server_cpu is not None else r.node_cpu, ".0f", "%"),
        _f(r.server_rss_mb, ".0f", " MB")
        if r.server_rss_mb is not None
        else _f(r.node_mem_pct, ".0f", "%"),
    ]


HEADERS = [
    "",
    "#",
    "stage",
    "offered",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "dropped",
    "srv CPU",
    "srv mem",
]


def render_text(rows: Sequence[StageRow], assessments: Sequence[Assessment]) -> str:
    lines = ["  STAGES"]
    for a in assessments:
        mine = [r for r in rows if r.scenario == a.scenario]
        cells = [HEADERS] + [table_cells(r) for r in mine]
        widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
        lines.append(f"    {a.scenario}")
        for c in cells:
            lines.append("      " + "  ".join(x.rjust(w) for x, w in zip(c, widths, strict=True)))
        lines.append(f"    knee: {a.knee_label}")
        lines.append(f"    verdict: {a.verdict} — {a.reason}")
        lines.append(f"    bottleneck: {a.hint}")
        if a.generator_warning:
            lines.append(f"    warning: {a.generator_warning_text}")
    return "\n".join(lines)
