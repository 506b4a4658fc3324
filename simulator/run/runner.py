"""The Environment: assembles one run (audio bank, transport, metrics, executors) and drives it.

Like Locust's Environment, it is the single place where the parts meet; everything it uses
can be swapped (a :class:`FakeTransport`, a different clock) so the whole run is testable
without a network. Each second a tick closes the interval statistics into a timeline point,
feeds the progress display and any samplers (server resources), and evaluates thresholds
marked ``abort_on_fail``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from scfleet_core.errors import ConfigError
from simulator.config import (
    RunConfig,
    ScenarioConfig,
)
from simulator.executors import Drive, device_plan, perf_offset, wait_set
from simulator.http import Transport
from simulator.metrics import Counter, Gauge, IntervalStats, Registry
from simulator.metrics.thresholds import ThresholdResult, evaluate_one
from simulator.run.device_row import DeviceTable, Rows
from simulator.run.devices import (
    Account,
    Behaviour,
    NoteCount,
    RunContext,
    count_notes,
    device_count_bound,
    load_accounts,
    make_behaviour,
)
from simulator.run.stage_recorder import StageRecorder

if TYPE_CHECKING:
    from audio_synth import PcmBank


class SamplerDied(Exception):
    """Raised by ``Sampler.sample()`` when the sampler's own background task or thread has
    died: the run then ends with an error instead of running on without that data."""


class Sampler(Protocol):
    """Something sampled once per tick (server CPU/RSS, generator load, …)."""

    def sample(self) -> Mapping[str, float | None]: ...


@dataclass
class ScenarioEvents:
    """Executor callbacks → metrics for one scenario."""

    registry: Registry
    name: str
    interval: IntervalStats
    active_now: int = 0
    peak: int = 0  # most devices busy since the last tick
    allocated: int = 0
    pre_allocated: int | None = None  # arrival-rate: devices beyond it were grown on demand
    #: arrivals of the plan neither started nor dropped (the run stopped before them); with
    #: workers, the coordinator's is the sum of theirs (``Final.unreached``)
    unreached_count: int = 0
    #: iterations cut while sleeping their think time (in ``interrupted_iterations`` too),
    #: summed from the ticks; with workers, from the snapshots merged into its interval
    think_cut_count: int = 0

    def __post_init__(self) -> None:
        tags = (("scenario", self.name),)
        self._dropped = self.registry.typed(Counter, "dropped_iterations", tags)
        self._interrupted = self.registry.typed(Counter, "interrupted_iterations", tags)

    def dropped(self, count: int = 1, *, pool_full: bool = False) -> None:
        self._dropped.value += count
        self.interval.dropped += count
        if pool_full:
            self.interval.pool_full += count

    def active(self, count: int) -> None:
        self.active_now = count
        if count > self.peak:
            self.peak = count

    def take_peak(self) -> int:
        peak, self.peak = self.peak, self.active_now
        return peak

    def interrupted(self, count: int) -> None:
        self._interrupted.value += count
        self.interval.interrupted += count

    def unreached(self, count: int) -> None:
        self.unreached_count += count

    def capacity(self, count: int) -> None:
        self.allocated = count

    @property
    def grown(self) -> int:
        """Devices an arrival-rate pool added beyond its pre-allocation (k6: unplanned VUs)."""
        return 0 if self.pre_allocated is None else max(self.allocated - self.pre_allocated, 0)


@dataclass
class RunResult:
    config: RunConfig
    registry: Registry
    timeline: list[dict[str, Any]]
    started_at: float  # wall clock (epoch seconds)
    duration: float
    interrupted: bool
    aborted: str | None  # threshold that aborted the run
    thresholds: list[ThresholdResult] = field(default_factory=list)
    devices: Rows = field(default_factory=list)  # a DeviceTable: rows made when read
    target: str = ""
    notes: list[str] = field(default_factory=list)
    stage_recorder: StageRecorder | None = None  # per-stage histograms (monitoring.attach)
    error: str | None = None  # a part of the run died (one line); the run ended early
    #: Ctrl-C/SIGTERM came, maybe once the schedule was over (not ``interrupted`` then)
    signalled: bool = False
    #: keep-alive connections opened before the start (``[run] warm_connections``): its
    #: first requests' http_req_connecting is 0 by choice, not the target's
    warmed: int = 0
    #: of how many asked (:func:`simulator.run.devices.warm_connections`, summed over workers)
    warm_asked: int = 0
    #: of ``interrupted_iterations``, those cut while sleeping their think time: every request
    #: answered, so the gate does not judge them unanswered
    think_cut: int = 0

    @property
    def thresholds_ok(self) -> bool:
        return all(r.ok for r in self.thresholds)


class Companion(Protocol):
    """Something that joins a run beside the scenarios, e.g. the board fleet (hw_bridge.fleet):
    prepared before the clock starts, run from the common start, closed at the end."""

    async def prepare(self, env: Environment) -> None: ...

    async def run(self, env: Environment, start: float) -> None: ...

    async def close(self) -> None: ...

    def device_rows(self) -> Rows: ...

    def open_files(self) -> int:
        """Descriptors it may hold at once during the run (its links): the open-file limit
        the run raises at start counts them (simulator.run.limits)."""


class RemoteScenarios(Protocol):
    """Scenarios run elsewhere (worker processes) whose results reach this Environment's
    registry and intervals; the scenario tasks wait until they are over."""

    async def wait(self) -> None: ...

    def ended(self) -> float | None:
        """Seconds after the common start at which the last worker's run ended (its
        scenarios, graceful stop included), as each worker measured it; None if a worker
        said nothing (it died): the coordinator's own clock then."""
        ...

    async def tick_ready(self, n: int) -> None:
        """Until every running worker's tick ``n`` is merged (bounded), so the coordinator's
        point ``n`` holds the same second of every worker."""
        ...


ProgressHook = Callable[["Environment", dict[str, Any]], None]
#: After each timeline point (``Environment.tick_hooks``). A hook whose work is long may return
#: its steps (a generator): the tick then yields to the event loop between them.
TickHook = Callable[["Environment", dict[str, Any]], Iterator[None] | None]
#: Called per scenario as each tick closes: (scenario, t, span, stats of that tick).
IntervalHook = Callable[[str, float, float, IntervalStats], None]


class Environment:
    """One load run: build with a config and a transport, then ``await env.run()``."""

    def __init__(
        self,
        cfg: RunConfig,
        transport: Transport,
        *,
        bank: PcmBank | None = None,
        accounts: Mapping[str, list[Account]] | None = None,
        tick: float = 1.0,
        progress: ProgressHook | None = None,
        target: str = "",
    ) -> None:
        self.cfg = cfg
        self.transport = transport
        self.registry = Registry()
        self.bank = bank
        self.accounts = dict(accounts or {})
        self.tick = tick
        self.progress = progress
        self.target = target
        self.samplers: list[tuple[str, Sampler]] = []
        self.stop_event = asyncio.Event()
        self.interrupted = False
        self.aborted: str | None = None
        self.timeline: list[dict[str, Any]] = []
        #: False: only the last point stays in memory (the run's stream keeps them all and
        #: gives them back for the report), so a long run's memory stays flat
        self.keep_timeline = True
        self.points = 0  # timeline points made so far (the tick count)
        self.vus_sampled = False  # a tick took k6's vus/vus_max sample
        self.intervals = {sc.name: IntervalStats() for sc in cfg.scenarios}
        self.events = {
            sc.name: ScenarioEvents(self.registry, sc.name, self.intervals[sc.name])
            for sc in cfg.scenarios
        }
        for sc in cfg.scenarios:
            self.events[sc.name].pre_allocated = sc.executor.pre_allocated()
        #: vus_max as k6 has it: the peak concurrent need (non-overlapping scenarios reuse).
        self.device_plan = device_plan(cfg.scenarios)
        self.behaviours: dict[str, Behaviour] = {}
        self.started_perf = 0.0
        self.notes: list[str] = []
        #: what the devices counted for the notes: this process's, plus its workers' (their
        #: Final), noted once as sums
        self.note_counts: list[NoteCount] = []
        #: connections opened before the start: this process's, plus its workers' (prepare)
        self.warmed = 0
        self.warm_asked = 0  # of how many: set with the transport's, plus its workers'
        self.interval_hooks: list[IntervalHook] = []
        #: per-stage histograms, set by monitoring.attach when the run is monitored
        self.stage_recorder: StageRecorder | None = None
        self.companions: list[Companion] = []
        self.error: str | None = None  # set by fail(): a background task died
        self._tasks: list[asyncio.Task[None]] = []
        self.tick_hooks: list[TickHook] = []  # after each timeline point (e.g. the stream)
        #: set when the scenarios run in worker processes (simulator.run.workers.WorkerPool)
        self.remote: RemoteScenarios | None = None
        #: the run's clock starts this long after the go (companions that start remote parts
        #: raise it in ``prepare`` so every part starts at the same instant)
        self.start_lead = 0.0
        #: a worker's common start (wall clock, ``time.time()``) given by its coordinator
        self.start_at: float | None = None
        #: least time between two wake-ups of an arrival schedule (a local worker of N: N ms)
        self.arrival_quantum = 0.0
        #: False in a worker: its unreached arrivals and note counts travel in its Final (its
        #: cut iterations in its snapshots), the coordinator notes the run's sums once
        self.note_unreached = True

    def add_sampler(self, prefix: str, sampler: Sampler) -> None:
        self.samplers.append((prefix, sampler))

    def request_stop(self, interrupted: bool = True) -> None:
        """Stop starting iterations; in-flight ones are cancelled (Ctrl-C, abort)."""
        self.interrupted = self.interrupted or interrupted
        self.stop_event.set()

    def cancel_inflight(self) -> None:
        """Second Ctrl-C: cancel the scenarios and companions now (no graceful stop); the
        clean-up and the results still happen, unlike cancelling the whole run."""
        self.request_stop()
        for t in self._tasks:
            t.cancel()

    @property
    def elapsed(self) -> float:
        return max(time.perf_counter() - self.started_perf, 0.0) if self.started_perf else 0.0

    @property
    def active_devices(self) -> int:
        return sum(e.active_now for e in self.events.values())

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        ctx = RunContext(
            self.registry,
            self.transport,
            self.bank,
            loop_to_perf=perf_offset(loop),
            target=self.target,
        )
        for sc in self.cfg.scenarios:
            self.behaviours[sc.name] = make_behaviour(
                sc, ctx, self.intervals[sc.name], self.accounts
            )
        try:
            for comp in self.companions:
                await comp.prepare(self)
        except BaseException:
            for comp in self.companions:
                await comp.close()
            raise
        await self.transport.start()
        # the connects so far are those start() opened ahead (the fast client's; aiohttp's none)
        self.warmed += int(getattr(self.transport, "connects", 0))
        now = time.time()
        # the common start: ``start_at`` (a worker; in the past only if its go came late, and
        # then it catches up rather than shifting its seconds) or now plus the lead
        lead = self.start_lead if self.start_at is None else self.start_at - now
        started_wall = now + lead
        self.started_perf = time.perf_counter() + lead
        start = loop.time() + lead
        tasks = [loop.create_task(self._scenario(sc, start)) for sc in self.cfg.scenarios]
        tasks += [loop.create_task(comp.run(self, start)) for comp in self.companions]
        # when this process's own parts of the run ended (the workers' end is theirs to say)
        own_end = 0.0

        def own_part_done(_task: asyncio.Task[None]) -> None:
            nonlocal own_end
            own_end = max(own_end, time.perf_counter() - self.started_perf)

        for comp, task in zip(self.companions, tasks[len(self.cfg.scenarios) :], strict=True):
            if comp is not cast(object, self.remote):
                task.add_done_callback(own_part_done)
        self._tasks = tasks
        ticker = loop.create_task(self._ticker(start))
        names = {t: f"scenario {sc.name}" for t, sc in zip(tasks, self.cfg.scenarios, strict=False)}
        try:
            await self._supervise(tasks, ticker, names)
        except asyncio.CancelledError:  # the whole run (a third Ctrl-C): never swallowed
            self.interrupted = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            for comp in self.companions:
                await comp.close()
            try:
                # a run of a second or more that no tick sampled (its ticks late behind a busy
                # loop) is sampled once at its end, as k6's own ticker would have sampled it;
                # a run under a second has no vus/vus_max, as in k6 1.1 (3 VUs x 1 iteration:
                # its --summary-export has neither)
                elapsed = loop.time() - start
                self._close_interval(
                    elapsed, sample_vus=not self.vus_sampled and elapsed >= self.tick
                )
            except Exception as exc:  # noqa: BLE001 - the results gathered so far still count
                self.fail("the last tick", exc)
        for behaviour in self.behaviours.values():  # Python devices' on_stop, their errors
            await behaviour.close()
            self.note_counts.extend(behaviour.note_counts())
        if self.note_unreached:  # a worker's counts travel in its Final, summed there
            self.notes.extend(count_notes(self.note_counts))
            self.notes.extend(
                unreached_note(name, ev.unreached_count)
                for name, ev in self.events.items()
                if ev.unreached_count
            )
        if self.note_unreached and not self.interrupted and not self.aborted:
            think = {name: ev.think_cut_count for name, ev in self.events.items()}
            self.notes.extend(cut_notes(self.cfg, self.registry, think))
        duration = time.perf_counter() - self.started_perf
        ended = self.remote.ended() if self.remote is not None else None
        if ended is not None:
            # The run is over when the workers' runs are (k6's duration ends with its
            # executors), not once they have also closed their connections, written their
            # device rows and exited: before, that tail (0.3 s at 1.5x a 26,000/s ceiling)
            # counted in the duration and every rate of the summary.
            duration = min(duration, max(ended, own_end))
        results = self.evaluate_thresholds(duration)
        devices = DeviceTable(
            [b.device_rows() for b in self.behaviours.values()]
            + [comp.device_rows() for comp in self.companions]
        )
        return RunResult(
            self.cfg,
            self.registry,
            self.timeline,
            started_wall,
            duration,
            self.interrupted,
            self.aborted,
            results,
            devices,
            self.target,
            self.notes,
            self.stage_recorder,
            error=self.error,
            warmed=self.warmed,
            warm_asked=self.warm_asked,
            think_cut=sum(ev.think_cut_count for ev in self.events.values()),
        )

    def fail(self, what: str, exc: BaseException) -> None:
        """A background part of the run died: stop the run, remember why (first one wins)."""
        if self.error is None:
            self.error = f"{what} failed: {type(exc).__name__}: {_one_line(exc)}"
            self.notes.append(f"run ended early: {self.error}")
        self.interrupted = True  # the schedule did not complete
        self.stop_event.set()

    async def _supervise(
        self,
        tasks: list[asyncio.Task[None]],
        ticker: asyncio.Task[None],
        names: Mapping[asyncio.Task[None], str],
    ) -> None:
        """Wait for the scenarios and companions while watching the tick: any of them dying
        ends the run with an error (never silently), and the others are wound down."""
        pending = set(tasks)
        while pending:
            watch = pending | ({ticker} if not ticker.done() else set())
            done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                pending.discard(t)
                if t.cancelled():
                    continue
                exc = t.exception()
                if exc is not None:
                    self.fail("the tick" if t is ticker else names.get(t, "a board fleet"), exc)
                elif t is ticker:
                    self.fail("the tick", RuntimeError("stopped"))

    def evaluate_thresholds(self, duration: float) -> list[ThresholdResult]:
        return threshold_results(self.cfg, self.registry, duration, self.aborted)

    async def _scenario(self, sc: ScenarioConfig, start: float) -> None:
        if self.remote is not None:  # the workers run every scenario's segments
            await self.remote.wait()
            return
        loop = asyncio.get_running_loop()
        begin = start + sc.start_time
        if sc.start_time > 0 and await wait_set(self.stop_event, begin - loop.time()):
            return  # stopped before its start time
        beh = self.behaviours[sc.name]
        ev = self.events[sc.name]
        run = Drive(begin, beh, ev, self.stop_event, sc.graceful_stop, self.arrival_quantum)
        await sc.executor.drive(run)

    async def _ticker(self, start: float) -> None:
        loop = asyncio.get_running_loop()
        n = 1
        while True:
            await asyncio.sleep(max(start + n * self.tick - loop.time(), 0))
            # woken late by more than a long turn: the loop is behind, the tick runs at once
            behind = loop.time() - (start + n * self.tick) > LONG_TURN
            behind = await fold_gently(self.registry, at_once=behind)
            if self.remote is not None:  # point n holds second n of every worker
                await self.remote.tick_ready(n)
                await self._close_gently(n * self.tick)  # after the wait: its own turns
            else:
                await self._close_gently(loop.time() - start, at_once=behind)
            self._check_abort(loop.time() - start)
            n += 1

    async def _close_gently(self, t: float, at_once: bool = False) -> None:
        """:meth:`_close_interval` one piece per loop turn (each scenario's statistics, each
        sampler, each tick hook and the steps it returns): in one piece the tick held a
        worker's loop 4-7 ms at 2,000 requests/s (busy), and the arrivals due meanwhile
        started that late, most of the start lag's p99. Cancelled (the run stopping), it
        still closes the point whole: the statistics it took are never lost. ``at_once``:
        the loop is behind (:func:`in_turns`)."""
        await in_turns(self._close_steps(t), at_once=at_once)

    def _close_interval(self, t: float, sample_vus: bool = True) -> None:
        for _ in self._close_steps(t, sample_vus):
            pass

    def _close_steps(self, t: float, sample_vus: bool = True) -> Iterator[None]:
        yield from self.registry.fold_steps()
        last_t = self.timeline[-1]["t"] if self.timeline else 0.0
        span = max(t - last_t, 1e-9)
        total_active = 0
        point: dict[str, Any] = {"t": round(t, 3), "span": round(span, 3), "scenarios": {}}
        for name, live in self.intervals.items():
            iv = live.take()
            for hook in self.interval_hooks:
                hook(name, t, span, iv)
            ev = self.events[name]
            ev.think_cut_count += iv.think_cut
            peak = ev.take_peak()
            total_active += peak
            h = iv.hist
            point["scenarios"][name] = {
                "requests": iv.requests,
                "failed": iv.failed,
                "dropped": iv.dropped,
                "pool_full": iv.pool_full,
                "iterations": iv.iterations,
                "interrupted": iv.interrupted,
                "think_cut": iv.think_cut,
                "iteration_errors": iv.iteration_errors,
                "sent": iv.sent,
                "received": iv.received,
                "rps": iv.requests / span,
                "active": peak,
                "p50_ms": h.percentile(50) / 1000,
                "p95_ms": h.percentile(95) / 1000,
                "p99_ms": h.percentile(99) / 1000,
                "max_ms": h.max / 1000,
                "avg_ms": h.mean / 1000,
            }
            if sample_vus:  # k6's vus sample: active at this instant ("active": the peak)
                point["scenarios"][name]["vus"] = ev.active_now
            yield
        if sample_vus:  # as k6: once a second while the run goes (after it only if never)
            self.registry.typed(Gauge, "vus").set(self.active_devices)
            grown = sum(e.grown for e in self.events.values())
            plan = self.device_plan
            self.registry.typed(Gauge, "vus_max").set(min(plan.planned + grown, plan.possible))
            self.vus_sampled = True
        point["active"] = total_active
        sink = self.registry.sink
        if sink is not None:  # --out json/csv: this tick's samples go to the files now
            gauges = [("vus", self.registry.typed(Gauge, "vus").value)] if sample_vus else []
            gauges += (
                [("vus_max", self.registry.typed(Gauge, "vus_max").value)] if sample_vus else []
            )
            sink.tick(self.registry, gauges)
            yield
        for prefix, sampler in self.samplers:
            try:
                values = sampler.sample()
            except SamplerDied:
                raise  # its background part is gone: the tick dies and the run ends with it
            except Exception as exc:  # noqa: BLE001 - one failed reading never stops a run
                values = {}
                note = f"{prefix} sampler failed: {type(exc).__name__}: {exc}"
                if note not in self.notes:
                    self.notes.append(note)
            for k, v in values.items():
                point[f"{prefix}.{k}"] = v
            yield
        self.timeline.append(point)
        self.points += 1
        if not self.keep_timeline:
            del self.timeline[:-1]
        for tick_hook in self.tick_hooks:
            hook_steps = tick_hook(self, point)
            if hook_steps is not None:
                yield from hook_steps
            yield
        if self.progress is not None:
            self.progress(self, point)

    def _check_abort(self, t: float) -> None:
        if self.aborted or self.cfg.no_thresholds:  # --no-thresholds: k6 aborts on none
            return
        if not any(th.abort_on_fail for th in self.cfg.thresholds):
            return
        src = _RegistrySource(self.registry, t)
        for th in self.cfg.thresholds:
            if not th.abort_on_fail or t < th.delay_abort_eval:
                continue
            if self.registry.merged(th.metric, dict(th.tags)) is None:
                continue  # as k6 mid-run: an empty sink is not judged (count>0 aborted at 1 s)
            res = evaluate_one(th, src)
            if not res.ok:
                self.aborted = th.name
                self.stop_event.set()
                return


def unreached_note(scenario: str, count: int) -> str:
    """The summary's word on arrivals of the plan that were neither started nor dropped."""
    return (
        f"{scenario}: {count:,} planned arrivals were neither started nor dropped (the run "
        "stopped before its schedule reached them): iterations + dropped_iterations fall short "
        "of the plan by as many"
    )


def cut_notes(
    cfg: RunConfig, registry: Registry, think: Mapping[str, int] | None = None
) -> list[str]:
    """The summary's word on iterations a graceful stop cut: as in k6, their requests are in
    no figure, so a server that never answered half its requests passed ``p(95)<500`` and
    ``http_req_failed rate<0.01`` with "held" and exit 0, this count the only trace. Those
    cut while sleeping their think time (``think``, per scenario) had every request answered:
    a note of their own, or a VU run with a short stop read as one whose requests went unheard."""
    notes = []
    for sc in cfg.scenarios:
        tags = {"scenario": sc.name}
        cut, done = (registry.merged(m, tags) for m in ("interrupted_iterations", "iterations"))
        n = int(cut.value) if isinstance(cut, Counter) else 0
        asleep = min((think or {}).get(sc.name, 0), n)
        if n - asleep:
            finished = int(done.value) if isinstance(done, Counter) else 0
            of = (
                f"of {n:,} interrupted_iterations, the other {asleep:,} in their think time"
                if asleep
                else "interrupted_iterations"
            )
            notes.append(
                f"{sc.name}: {n - asleep:,} iterations were still running when its graceful stop "
                f"ended and were cut ({of}): as in k6 a request they had in flight "
                f"is in no latency, failure or check figure, so thresholds judge the "
                f"{finished:,} that finished (the stage table counts the cut)"
            )
        if asleep:
            notes.append(
                f"{sc.name}: {asleep:,} iterations were cut by the graceful stop while sleeping "
                f"their think time (in interrupted_iterations, as in k6, not in iterations): "
                f"their requests were all answered and are in every request figure"
            )
    return notes


#: A loop turn longer than this (seconds) means the loop is behind its schedule (a worker
#: past its ceiling: the arrival driver catching up 1,000 starts a callback, 40-50 ms a turn):
#: the arrivals are late by more than the tick could add, so its remaining pieces run at once.
LONG_TURN = 0.02


async def in_turns(steps: Iterator[None], at_once: bool = False) -> bool:
    """Run ``steps`` one per event-loop turn, so long work never holds the loop in one piece.
    After a turn longer than :data:`LONG_TURN` the rest runs at once: a tick of ~60 pieces
    took ~60 such turns, 2-3 s, so a worker past its ceiling sent no snapshot until its end
    (the coordinator's live figures and thresholds blind). ``at_once`` (the caller already
    saw the loop behind): all at once. Cancelled (the run stopping), the rest runs at once
    too: a step's work is never half done. Returns whether the loop was (seen) behind."""
    loop = asyncio.get_running_loop()
    behind = at_once
    try:
        if not behind:
            for _ in steps:
                turn = loop.time()
                await asyncio.sleep(0)
                if loop.time() - turn > LONG_TURN:
                    behind = True
                    break
    finally:
        for _ in steps:
            pass
    return behind


async def fold_gently(registry: Registry, rounds: int = 4, at_once: bool = False) -> bool:
    """Fold the second's buffered rows one histogram at a time, yielding to the event loop
    between: a fold in one piece held the loop ~10 ms at 8,000 requests/s, and every arrival
    due meanwhile started that late (most of the start lag's p99). Rows recorded during those
    loop turns are folded the same way (up to ``rounds`` passes), so the tick's own flush
    finds next to nothing. Once the loop is seen behind (``at_once``, or a long turn) the
    rest is folded at once, with no further round: each round cost a long turn, ~0.2 s each
    at a worker's start-up at 1.5x its ceiling. Cancelled (the run stopping), it still folds
    what it took. Returns whether the loop was (seen) behind."""
    behind = at_once
    for _ in range(rounds):
        if not any(rec.pending for rec in registry.recorders):
            break
        behind = await in_turns(registry.fold_steps(), at_once=behind)
        if behind:
            break
    return behind


def threshold_results(
    cfg: RunConfig, registry: Registry, duration: float, aborted: str | None = None
) -> list[ThresholdResult]:
    """Every threshold of ``cfg`` over a registry (a live run's, or one rebuilt from a stream).

    ``aborted``: the threshold that stopped the run (``abort_on_fail``, as :attr:`Environment.
    aborted` names it) has failed, whatever the whole run's figure reads: k6 exits 99 after
    such an abort. Judged afresh, ``http_reqs rate<20.5`` that aborted a 5 s run at 1 s (21
    requests) read 20.4 over the run's 1.03 s and passed: exit 0 for a run stopped at 21 %.
    None under ``--no-thresholds`` (``cfg.no_thresholds``), as k6 judges none then."""
    if cfg.no_thresholds:
        return []
    src = _RegistrySource(registry, duration)
    results = [evaluate_one(t, src) for t in cfg.thresholds]
    for r in results:
        th = r.threshold
        if aborted == th.name and th.abort_on_fail and r.ok:
            r.ok = False
            r.note = "it failed mid-run and aborted the run (abort_on_fail)"
    return results


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "(no message)"


class _RegistrySource:
    """The registry as thresholds see it, counter rates taken over ``duration`` seconds."""

    def __init__(self, reg: Registry, duration: float) -> None:
        self.reg = reg
        self.duration = duration

    def metric_type(self, name: str) -> str | None:
        return self.reg.metric_type(name)

    def aggregate(self, name: str, tags: Mapping[str, str], agg: str) -> float | None:
        return self.reg.aggregate(name, tags, agg, self.duration)


def audio_needs(cfg: RunConfig) -> int:
    """Largest PCM slice any scenario asks of the bank (0: no audio needed)."""
    need = 0
    for sc in cfg.scenarios:
        need = max(need, sc.device.audio_bytes())
    return need


def build_bank(cfg: RunConfig) -> PcmBank | None:
    need = audio_needs(cfg)
    if not need:
        return None
    from audio_synth import PcmBank

    a = cfg.audio
    rate = next(
        (r for sc in cfg.scenarios if (r := sc.device.audio_sample_rate()) is not None), 16000
    )
    return PcmBank.build(
        a.seed,
        sample_rate=rate,
        profiles=a.profiles,
        seconds=a.seconds,
        max_chunk_bytes=max(need, 2),
        anomaly_probability=a.anomaly_probability,
        snr_db=a.snr_db,
    )


def load_all_accounts(
    cfg: RunConfig, seeded: Mapping[str, list[Account]] | None = None
) -> dict[str, list[Account]]:
    """Accounts per auth scenario: ``seeded`` (made in memory for the embedded server) or
    read from the scenario's ``accounts_csv``."""
    out = dict(seeded or {})
    for sc in cfg.scenarios:
        dev = sc.device
        if dev.needs_accounts and sc.name not in out:
            key = f"scenarios.{sc.name}.device.accounts_csv"
            if dev.accounts_csv is None:
                raise ConfigError(
                    "is required for an auth_flow scenario against this target",
                    source=cfg.source,
                    key=key,
                )
            out[sc.name] = load_accounts(dev.accounts_csv, device_count_bound(sc), key)
    return out
