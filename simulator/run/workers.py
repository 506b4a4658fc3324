"""Local workers (issue 12): one run over N processes, one run folder.

The coordinator (the ``scfleet run`` process) keeps what a run has once: the target, the
boards, the live display, the stage recorder, every threshold and the run folder. Worker k
runs execution segment k of N of every scenario (:mod:`simulator.executors.segment`) on its
own event loop against the same target, and once per tick sends what changed: the tick's
interval statistics per scenario and its registry's deltas (counter and rate increments,
histogram bucket increments) — compact, never a sample. The coordinator merges them into its
own registry and intervals, so its ticks, thresholds (``abort_on_fail`` too), stage table and
summary see the merged run, and the folder is written by the one-process code.

Time: the go carries the common start as a wall-clock instant (``time.time()``: one clock on
one host, and NTP-close across machines, where a monotonic clock means nothing), a little
ahead of the coordinator's own start, so every segment's schedule and ticks count from the
same instant. Each snapshot carries its tick index and the coordinator closes its point n only
once every running worker's tick n is in (or a bounded grace has passed), so point n holds
second n of every worker.

Per-sample streams (``--out json=/csv=``): each worker writes its samples to its own part file
(the one-process writer, minus the CSV header and the ``vus`` gauges, which are the
coordinator's); its snapshot says where each tick ends, and at each tick the coordinator
appends every worker's tick to the one file (k6 metric declarations once), then its own rows
(boards, ``vus``). At the end, or after a worker died, what is left in the parts up to the last
whole line is appended too, and the parts are removed. Nothing of this runs per request.

Rules: a worker that exits without its final report ends the run with an engine error that
names it (exit 103); the other workers are stopped and what was merged is written. Ctrl-C and
SIGTERM reach the coordinator, which tells every worker to stop (workers ignore the terminal's
SIGINT) and still writes the merged result.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from scfleet_core.errors import ConfigError, ScfleetError
from simulator.executors import SegmentSequence, wait_set
from simulator.metrics import IntervalStats, Registry
from simulator.metrics.histogram import Histogram
from simulator.metrics.registry import (
    Counter,
    Gauge,
    MetricValue,
    Rate,
    RowSink,
    Tags,
    Trend,
)
from simulator.run.device_row import DeviceRow
from simulator.run.monitoring import (
    GEN_CPU_SATURATED_PCT,
    GEN_DROPPED_SHARE,
    GEN_LOOP_LAG_MS,
    GeneratorSampler,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from audio_synth import PcmBank
    from simulator.config import RunConfig
    from simulator.executors import ExecutorConfig
    from simulator.run.device_parts import PartRows, Scratch
    from simulator.run.devices import Account, NoteCount, VirtualDevice
    from simulator.run.runner import Environment, Sampler

#: How long workers get to import, build their audio and say they are ready.
READY_TIMEOUT = 120.0
#: The common start is this far after the go is sent: every worker has it before then.
START_LEAD = 0.1
#: How long (share of a tick) the coordinator waits for a worker's tick n before closing its
#: point n without it (that tick then joins point n+1: a slow worker never stalls the run).
TICK_GRACE = 0.5
#: After a late tick the wait widens to the lateness seen over the last LATE_WINDOW ticks of
#: every worker (+25 %), at most MAX_TICK_GRACE ticks: a steadily slow link or a worker whose
#: clock is behind lands in its own second again; the live display lags by as much. Until a
#: worker's first tick is in, nothing is known of its lateness and start-up is when it is
#: latest (every device connects: 1.5 s at 1.5x its ceiling): the wait is MAX_TICK_GRACE.
MAX_TICK_GRACE = 2.0
LATE_WINDOW = 10
#: a local worker that sends nothing for this long (seconds) between the go and the end of its
#: schedule is hung (stopped, or its loop blocked by a device's code): it is killed and the run
#: ends as for a dead one. Ticks come every second, at most a few seconds late at overload.
HUNG_AFTER = 30.0


def worker_name(k: int, parts: int) -> str:
    """Worker ``k`` (from 0) of ``parts`` as errors and reports name it."""
    seg = SegmentSequence.even(parts).segment(k)
    return f"worker {k + 1} of {parts} (segment {seg})"


def cpu_count() -> int:
    """The cores this process may run on (``workers = "auto"``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


def auto_workers(cfg: RunConfig | None = None) -> int:
    """``workers = "auto"``: one per core, at most one per device the run may use at once."""
    cores = cpu_count()
    if cfg is None or not cfg.scenarios:
        return cores if cfg is None else 1
    from simulator.executors import device_plan

    return max(min(cores, device_plan(cfg.scenarios).possible), 1)


# -- messages (pickled over the pipe) ---------------------------------------------------


@dataclass(frozen=True)
class ScenarioTick:
    """One scenario's tick in one worker."""

    name: str
    stats: IntervalStats
    active: int  # devices busy at the tick
    peak: int  # most devices busy during the tick
    allocated: int  # devices allocated so far


@dataclass(frozen=True)
class SeriesDelta:
    """What one series gained since the last snapshot (a Counter/Rate/Trend increment)."""

    metric: str
    tags: Tags
    mtype: str
    contains: str
    value: MetricValue


@dataclass(frozen=True)
class GenFigures:
    """One process's generator load over a tick (``monitoring.GeneratorSampler``)."""

    cpu_percent: float
    cpu_demand: float | None = None
    loop_lag_ms: float | None = None
    loop_lag_max_ms: float | None = None
    #: a worker's own schedule: iterations it dropped behind its schedule (not those an
    #: exhausted device pool dropped) and all it had to start (dropped + run) in the tick,
    #: and its iterations' p99 start lag (ms); not sampled for the coordinator
    dropped: int = 0
    scheduled: int = 0
    start_lag_p99_ms: float | None = None

    @classmethod
    def of(cls, values: Mapping[str, float | None]) -> GenFigures:
        return cls(
            values.get("cpu_percent") or 0.0,
            values.get("cpu_demand"),
            values.get("loop_lag_ms"),
            values.get("loop_lag_max_ms"),
        )

    @property
    def dropped_share(self) -> float | None:
        return self.dropped / self.scheduled if self.scheduled else None

    @property
    def pressure(self) -> float:
        """How close to saturated by the stage table's rules (1: at the threshold)."""
        return max(
            self.cpu_percent / GEN_CPU_SATURATED_PCT,
            (self.loop_lag_ms or 0.0) / GEN_LOOP_LAG_MS,
            (self.dropped_share or 0.0) / GEN_DROPPED_SHARE,
            (self.start_lag_p99_ms or 0.0) / GEN_LOOP_LAG_MS,
        )


@dataclass(frozen=True)
class Snapshot:
    worker: int
    tick: int  # the worker's tick index (1, 2, …; its last, partial one is one more)
    scenarios: tuple[ScenarioTick, ...]
    series: tuple[SeriesDelta, ...]
    gen: GenFigures | None = None
    parts: tuple[int, ...] = ()  # per-sample part files: bytes written up to this tick's end


@dataclass(frozen=True)
class Ready:
    worker: int
    warmed: bool = False  # the answer to Warm: its connections are open
    opened: int = 0  # with warmed: how many it opened within fast.WARM_WAIT
    asked: int = 0  # with warmed: how many it was to open (devices.warm_connections)


@dataclass(frozen=True)
class Final:
    """A worker's last word: its devices (with their global identity), notes, error. A local
    worker writes its devices to its part file instead (:mod:`simulator.run.device_parts`)
    and says how many (``devices_written``); ``devices`` is then empty."""

    worker: int
    devices: tuple[tuple[str, int, DeviceRow], ...]  # (scenario, global index, row)
    notes: tuple[str, ...]
    error: str | None
    interrupted: bool
    devices_written: int = 0
    #: per scenario, arrivals of its plan neither started nor dropped (the run stopped first)
    unreached: tuple[tuple[str, int], ...] = ()
    #: what its devices counted for the notes (errors, duplicates): noted as the run's sums
    counts: tuple[NoteCount, ...] = ()


@dataclass(frozen=True)
class Failed:
    worker: int
    error: str


@dataclass(frozen=True)
class Ending:
    """A worker's run is over; it writes its device rows, then sends its :class:`Final`: a
    silence from now on is that write, not a hang (:data:`HUNG_AFTER`)."""

    index: int
    #: seconds after the common start at which its run ended (its Environment's duration)
    ended: float | None = None


@dataclass(frozen=True)
class Go:
    start: float  # the common start: wall clock (time.time()), every worker's second 0
    url: str = ""  # the target, when the worker was launched before it was known


@dataclass(frozen=True)
class Warm:
    """Open your connections to ``url`` now (devices.warm_connections) and say Ready again:
    sent once every worker is ready and the target is up, so the go's lead is not spent on
    them."""

    url: str


@dataclass(frozen=True)
class Stop:
    cancel: bool = False  # a second Ctrl-C: cancel in-flight iterations now


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker process needs (pickled to it at spawn)."""

    index: int
    parts: int
    cfg: RunConfig
    url: str
    accounts: Mapping[str, list[Account]]
    tick: float = 1.0
    samples: SampleParts | None = None  # its part of the per-sample streams (local workers)
    devices_part: Path | None = None  # where it writes its device rows (local workers)
    arrival_quantum: float = 0.0  # runtime.arrival_quantum of the local worker count
    cpu: int | None = None  # the CPU it runs on (pinned_cpus), or None: wherever the OS puts it


#: what a worker sends to the coordinator, and what the coordinator sends to a worker
WorkerMessage = Ready | Snapshot | Final | Failed | Ending
Control = Go | Warm | Stop


# -- the channel seam: a worker's messages travel over a pipe or a cluster's calls ---------


class WorkerEnd(Protocol):
    """A worker's end of its channel (:class:`PipeEnd`; a Ray actor's in
    :mod:`simulator.run.cluster`)."""

    def send(self, msg: WorkerMessage) -> None: ...

    def recv(self) -> Control:
        """Block for the coordinator's next word before the run (:class:`Warm`, then
        :class:`Go` or :class:`Stop`)."""
        ...

    def listen(
        self, loop: asyncio.AbstractEventLoop, on_message: Callable[[Control | None], None]
    ) -> None:
        """From now on hand each later message to ``on_message`` on ``loop`` (None: the
        coordinator is gone)."""
        ...

    def unlisten(self) -> None: ...


class WorkerChannel(Protocol):
    """The coordinator's end of one worker's channel (:class:`PipeChannel`; a Ray actor's in
    :mod:`simulator.run.cluster`)."""

    #: where the worker runs, for messages: "pid 1234", "actor 3f2a…, node 10.0.0.5"
    where: str

    def open(self, deliver: Callable[[WorkerMessage], None], gone: Callable[[str], None]) -> None:
        """Hand each message to ``deliver`` on the running loop; call ``gone(reason)`` once
        if the worker ends without a word more (it exited, died, lost its node)."""
        ...

    def send(self, msg: Control) -> None:
        """Best effort: a worker that is gone is reported through ``gone``."""
        ...

    async def close(self, deadline: float) -> None:
        """Wait until ``deadline`` (loop time) for the worker to end, then end it; free it."""
        ...

    def end_hung(self) -> None:
        """End a worker that went silent mid-run (:data:`HUNG_AFTER`) without waiting: its
        channel then reports it gone, as for one that died."""
        ...


class WorkerLauncher(Protocol):
    """Starts one worker per job and hands back their channels, in job order."""

    async def launch(self, jobs: Sequence[WorkerJob]) -> list[WorkerChannel]: ...

    async def close(self) -> None:
        """After every channel is closed: free what the launch reserved."""
        ...


#: Gauges the coordinator samples itself from the merged run (k6's ``vus``, ``vus_max``).
SAMPLED_HERE = frozenset({"vus", "vus_max"})


class SampleParts(Protocol):
    """A worker's part of the run's per-sample streams, as sent to it
    (``simulator.report.streams.PartSpec``): ``open`` gives its writer."""

    def open(self) -> PartWriter: ...


class PartWriter(RowSink, Protocol):
    """A worker's per-sample writer (its registry's sink): bytes per stream after a tick."""

    def sizes(self) -> tuple[int, ...]: ...

    def close(self) -> None: ...


class SampleStreams(Protocol):
    """The run's per-sample writer on the coordinator (``simulator.report.streams.PointWriter``):
    it makes each worker's part and takes the parts' ticks in."""

    @property
    def kinds(self) -> tuple[str, ...]: ...

    def part_spec(self, paths: tuple[Path, ...]) -> SampleParts: ...

    def adopt(self, kind: str, data: bytes) -> None: ...

    def written_elsewhere(self, name: str, tags: Tags, value: MetricValue) -> None: ...


class DeltaTracker:
    """Registry deltas since the last call: counters and rates only grow, so the difference
    of two readings is exact and merging the differences gives the total. A trend's histogram
    delta is ``Histogram.take_fresh(keep=False)`` (the one delta mechanism, which the run
    stream's tick line uses too): everything it holds, after which it starts empty, so a tick
    costs what the tick recorded, not every bucket seen since the start, and its buckets
    travel as two packed arrays. A worker's registry is only ever read through its deltas:
    the coordinator keeps the totals (thresholds, summary)."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self._last: dict[tuple[str, Tags], Any] = {}

    def take(self) -> tuple[SeriesDelta, ...]:
        reg = self.reg
        reg.flush()
        out: list[SeriesDelta] = []
        for key, s in reg.series.items():
            prev = self._last.get(key)
            delta: MetricValue | None = None
            if isinstance(s, Counter):
                if s.value != (prev or 0.0):
                    delta = Counter()
                    delta.value = s.value - (prev or 0.0)
                    self._last[key] = s.value
            elif isinstance(s, Rate):
                p_pass, p_total = prev or (0, 0)
                if s.total != p_total:
                    delta = Rate()
                    delta.passes, delta.total = s.passes - p_pass, s.total - p_total
                    self._last[key] = (s.passes, s.total)
            elif isinstance(s, Trend):
                if s.hist.count:  # all it holds: the worker keeps no histogram of its own
                    delta = Trend()
                    delta.hist = s.hist.take_fresh(keep=False)
            elif isinstance(s, Gauge) and key[0] not in SAMPLED_HERE:
                now = (s.value, s.min, s.max)  # a Python device's gauge: latest and range
                if s.seen and now != prev:
                    delta = Gauge()
                    delta.value, delta.min, delta.max, delta.seen = s.value, s.min, s.max, True
                    self._last[key] = now
            if delta is not None:
                name = key[0]
                out.append(
                    SeriesDelta(
                        name,
                        key[1],
                        reg.types[name],
                        reg.contains.get(name, "default"),
                        delta,
                    )
                )
        return tuple(out)


# -- the worker process -----------------------------------------------------------------


def segment_config(cfg: RunConfig, index: int, parts: int) -> RunConfig:
    """``cfg`` with every scenario cut to segment ``index`` of ``parts``; thresholds are the
    coordinator's (evaluated once, on merged data), so a worker has none."""
    seg = SegmentSequence.even(parts).segment(index)
    # a segment's spec answers every question a scenario's executor does (ExecutorSpec)
    scenarios = tuple(
        replace(sc, executor=cast("ExecutorConfig", sc.executor.for_segment(seg)))
        for sc in cfg.scenarios
    )
    run = cfg.run
    if run.warm_connections != "auto":  # N is the run's: each worker opens its share
        share = run.warm_connections // parts + (index < run.warm_connections % parts)
        run = replace(run, warm_connections=share)
    return replace(cfg, scenarios=scenarios, thresholds=(), sections={}, run=run)


def watch_pipe(
    loop: asyncio.AbstractEventLoop, conn: Connection, readable: Callable[[], None]
) -> None:
    """``loop.add_reader`` for a pipe end, which stays blocking. uvloop makes a watched fd
    non-blocking, and ``Connection.recv``/``send`` then fail with ``BlockingIOError`` on a
    message larger than one read or than the socket buffer (a busy tick's snapshot at
    2,000/s): the run ended with "worker ... exited without its final report". The loop only
    needs to know when the pipe is readable; a message is then read whole."""
    loop.add_reader(conn.fileno(), readable)
    os.set_blocking(conn.fileno(), True)


class PipeEnd:
    """A local worker's end of its channel: the multiprocessing pipe to the coordinator."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, msg: WorkerMessage) -> None:
        self.conn.send(msg)

    def recv(self) -> Control:
        return cast("Control", self.conn.recv())

    def listen(
        self, loop: asyncio.AbstractEventLoop, on_message: Callable[[Control | None], None]
    ) -> None:
        conn = self.conn

        def readable() -> None:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the coordinator is gone
                loop.remove_reader(conn.fileno())
                on_message(None)
                return
            on_message(msg)

        self._loop = loop
        watch_pipe(loop, conn, readable)

    def unlisten(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self.conn.fileno())


def _histograms(
    scenarios: Sequence[ScenarioTick], deltas: Sequence[SeriesDelta]
) -> Iterator[Histogram]:
    """The histograms a snapshot carries (its scenarios' ticks, its Trend deltas)."""
    for sc in scenarios:
        yield sc.stats.hist
    for d in deltas:
        if isinstance(d.value, Trend):
            yield d.value.hist


#: Test hook: ``K:SECONDS[:FROM]`` makes worker K (from 1) send each snapshot from its tick
#: FROM on (default 1) SECONDS late, as a slow link or a stalled worker would
#: (tests/scfleet/test_late_ticks.py).
LATE_TICKS_ENV = "SCFLEET_TEST_LATE_TICKS"


def late_ticks(index: int) -> tuple[float, int] | None:
    """Worker ``index``'s lateness and its first late tick (:data:`LATE_TICKS_ENV`), or None."""
    which, _sep, rest = os.environ.get(LATE_TICKS_ENV, "").partition(":")
    seconds, _sep, first = rest.partition(":")
    return (float(seconds), int(first or 1)) if which == str(index + 1) and seconds else None


#: ``1``: pin each local worker to a CPU of its own when there are as many workers as CPUs
#: this process may use (:func:`pinned_cpus`); unset or ``0``: the OS places them.
PIN_ENV = "SCFLEET_PIN_WORKERS"


def pinned_cpus(parts: int) -> list[int | None]:
    """The CPU each of ``parts`` local workers is pinned to: each its own when
    ``$SCFLEET_PIN_WORKERS`` is 1 and the workers are as many as the CPUs this process may use
    (``auto``), else None for each. Unpinned, two workers migrated ~110-190 times a second
    between the cores (FIFO-priority runs beside nginx at 4,000-8,000/s, busy machine; 15 once
    pinned) and cost 2-5 % more CPU per request, inside the run-to-run spread; but a pinned
    worker cannot leave a core that nginx (or anything else) is busy on, and start lag p99 rose
    in the same runs: opt-in until measured quiet.
    The coordinator is never pinned."""
    flag = os.environ.get(PIN_ENV, "").strip()
    if flag not in ("", "0", "1"):
        raise ConfigError(f"{PIN_ENV}: expected 0 or 1, got {flag!r}")
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return [None] * parts
    if flag != "1" or len(cpus) != parts:
        return [None] * parts
    return list(cpus)


def pin_to(cpu: int | None) -> None:
    """Run this process on ``cpu`` only (None: leave it where it may run)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def yield_to_workers() -> Callable[[], None]:
    """Make the calling thread (the coordinator's loop, while its local workers run)
    ``SCHED_BATCH``, and return what puts its policy back. A batch thread never preempts a
    running thread when it wakes (Linux waits for the scheduler tick): the coordinator wakes
    for each snapshot and then merges, ~5 ms a tick, while the workers' arrivals are due; it
    times no request, so a worker should never wait for it. Its share of the CPU is unchanged
    (same weight), and unlike a higher nice value the change can be undone without privilege
    (a library caller's thread gets its policy back). A thread at a real-time priority (a
    bench under ``chrt -f 20``; its workers were spawned with it) goes one priority below its
    workers instead: at their priority its merge held a core they waited for (at 12,000/s,
    1 KB, FIFO 20: 762 starts > 5 ms late in the first 60 ms of a second in 3 runs, 154 one
    below). At the lowest real-time priority, or on a platform without these policies, the
    thread is left as it is."""
    batch = getattr(os, "SCHED_BATCH", None)
    try:
        if batch is None:
            return lambda: None
        policy = os.sched_getscheduler(0)
        if policy in (os.SCHED_FIFO, os.SCHED_RR):
            prio = os.sched_getparam(0).sched_priority
            if prio <= os.sched_get_priority_min(policy):
                return lambda: None
            os.sched_setscheduler(0, policy, os.sched_param(prio - 1))
            back = (policy, prio)
        elif policy == os.SCHED_OTHER:
            os.sched_setscheduler(0, batch, os.sched_param(0))
            back = (os.SCHED_OTHER, 0)
        else:
            return lambda: None
    except (AttributeError, OSError):  # pragma: no cover - not Linux, or not allowed
        return lambda: None

    def restore() -> None:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, back[0], os.sched_param(back[1]))

    return restore


def worker_main(conn: Connection, job: WorkerJob) -> None:
    """A worker process's entry point (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # born blocked: signals_held
    try:
        run_worker(PipeEnd(conn), job)
    except BaseException:
        raise SystemExit(1) from None
    finally:
        conn.close()
    # Everything is sent and the part files are closed: skip the interpreter's teardown
    # (collecting the bank, histograms and modules took ~0.8 s, which the run waited for).
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_worker(end: WorkerEnd, job: WorkerJob) -> None:
    """Run segment ``job.index`` of ``job.parts`` and report over ``end`` (a local process's
    pipe or a cluster actor's channel: the same code either way). An exception is reported
    as :class:`Failed` before it propagates."""
    try:
        _worker(end, job)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            end.send(Failed(job.index, f"{type(exc).__name__}: {str(exc)[:200]}"))
        raise


def _worker(end: WorkerEnd, job: WorkerJob) -> None:
    from simulator.executors.runtime import new_loop, tuned_gc
    from simulator.run.runner import build_bank

    pin_to(job.cpu)  # first: nothing it builds moves between cores after
    cfg = segment_config(job.cfg, job.index, job.parts)
    bank = build_bank(cfg)
    writer = job.samples.open() if job.samples is not None else None
    # The collector's set-up is done before Ready, not after the go: its full collection of
    # every module, the bank and the config took 40-110 ms (busy), and the go comes only
    # START_LEAD (0.1 s) before the first arrival: a worker started up to 105 ms late. Its
    # loop is made before Ready as well (importing uvloop took 12-14 ms after the go, busy).
    loop = new_loop()
    warm_imports()  # numpy and pickle: else the first tick imported them (0.2 s late, quiet)
    with tuned_gc():
        _serve(end, job, cfg, bank, writer, loop)


def _serve(
    end: WorkerEnd,
    job: WorkerJob,
    cfg: RunConfig,
    bank: PcmBank | None,
    writer: PartWriter | None,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """A worker from Ready to Final: its segment's run on its own event loop."""
    from simulator.http import make_transport
    from simulator.http.transport import Transport
    from simulator.run.devices import warm_connections
    from simulator.run.monitoring import GeneratorSampler
    from simulator.run.runner import Environment

    transport: Transport | None = None
    end.send(Ready(job.index))
    first = end.recv()
    if isinstance(first, Warm):
        # Its connections open now, while nothing is due; the go waits for every worker's
        # (FastTransport.start() warms once: Environment.run's start() opens and waits for none).
        warm = warm_connections(cfg)
        transport = make_transport(first.url, cfg.target.timeout, cfg.target.transport, warm)
        loop.run_until_complete(transport.start())
        opened = int(getattr(transport, "connects", 0))  # the fast client's; aiohttp's none
        end.send(Ready(job.index, warmed=True, opened=opened, asked=warm))
        first = end.recv()
    if isinstance(first, Stop):
        if transport is not None:
            loop.run_until_complete(transport.close())
        loop.close()
        if writer is not None:
            writer.close()
        end.send(Final(job.index, (), (), None, True))
        return
    assert isinstance(first, Go)
    start_at = first.start
    url = first.url or job.url

    async def main() -> None:
        loop = asyncio.get_running_loop()
        nonlocal transport
        if transport is None:
            transport = make_transport(url, cfg.target.timeout, cfg.target.transport)
        env = Environment(cfg, transport, bank=bank, accounts=job.accounts, target=url)
        env.tick = job.tick
        env.start_at = start_at
        env.arrival_quantum = job.arrival_quantum
        env.registry.sink = writer
        env.note_unreached = False  # counted in Final: the coordinator notes the sum
        gen = GeneratorSampler()
        gen.start()
        env.keep_timeline = False  # the coordinator keeps the run's timeline
        tracker = DeltaTracker(env.registry)
        ticks: dict[str, IntervalStats] = {}

        def on_interval(name: str, t: float, span: float, iv: IntervalStats) -> None:
            ticks[name] = iv

        def on_tick(env: Environment, point: dict[str, Any]) -> Iterator[None]:
            """The snapshot, in steps (the tick yields to the loop between): rows recorded
            since the point are folded one histogram a turn, then the deltas, each histogram
            compacted (a turn each: the send then only packs arrays), the process
            sample, the figures and the send are a turn each (in one piece ~2.5 ms at 2,000
            requests/s; the sample and the figures together up to 1.8 ms of CPU, busy)."""
            scenarios = tuple(
                ScenarioTick(
                    name,
                    ticks.pop(name, IntervalStats()),
                    env.events[name].active_now,
                    int(point["scenarios"][name]["active"]),
                    env.events[name].allocated,
                )
                for name in env.intervals
            )
            yield from env.registry.fold_steps()
            deltas = tracker.take()
            sizes = writer.sizes() if writer is not None else ()  # the parts of these deltas
            yield
            for hist in _histograms(scenarios, deltas):  # a turn each: the send only packs
                hist.compact()
                yield
            sampled = GenFigures.of(gen.sample())  # psutil and /proc: a turn of its own
            yield
            figures = schedule_figures(sampled, scenarios, deltas, job.arrival_quantum)
            yield
            snap = Snapshot(job.index, env.points, scenarios, deltas, figures, sizes)
            if late is None or snap.tick < late[1]:
                end.send(snap)
            else:  # the test hook: this worker's snapshots travel ``late`` seconds late
                held.append(snap)
                loop.call_later(late[0], send_held)

        late = late_ticks(job.index)
        held: list[Snapshot] = []

        def send_held() -> None:
            if held:
                end.send(held.pop(0))

        env.interval_hooks.append(on_interval)
        env.tick_hooks.append(on_tick)

        orphaned = False  # the coordinator is gone: nobody will read this worker's rows

        def on_message(msg: Control | None) -> None:
            nonlocal orphaned
            if msg is None:  # the coordinator is gone: stop
                orphaned = True
                env.cancel_inflight()
            elif isinstance(msg, Stop):
                if msg.cancel:
                    env.cancel_inflight()
                else:
                    env.request_stop()

        end.listen(loop, on_message)
        try:
            result = await env.run()
        finally:
            while held:
                end.send(held.pop(0))
            gen.stop()
            end.unlisten()
            await transport.close()
            if writer is not None:
                writer.close()
        if not orphaned:
            end.send(Ending(job.index, result.duration))
        notes, error, stopped = tuple(result.notes), result.error, result.interrupted
        unreached = tuple(
            (name, ev.unreached_count) for name, ev in env.events.items() if ev.unreached_count
        )
        counts = tuple(c for c in env.note_counts if c.count)
        if job.devices_part is not None:  # row by row to the part, never all in a message
            from simulator.run.device_parts import drop_scratch, write_lines

            if orphaned:  # a killed coordinator leaves no scratch folder behind
                drop_scratch(job.devices_part)
                return
            written = write_lines(job.devices_part, _device_lines(env))
            try:
                end.send(Final(job.index, (), notes, error, stopped, written, unreached, counts))
            except OSError:
                drop_scratch(job.devices_part)
                raise
        else:
            names = [sc.name for sc in cfg.scenarios]
            rows = tuple((names[rank], i, row) for rank, i, row in _device_rows(env))
            end.send(
                Final(job.index, rows, notes, error, stopped, unreached=unreached, counts=counts)
            )

    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        runner.run(main())


def _in_order(devices: list[VirtualDevice]) -> list[VirtualDevice]:
    if any(a.index > b.index for a, b in itertools.pairwise(devices)):
        return sorted(devices, key=lambda d: d.index)
    return devices


def _device_rows(env: Environment) -> Iterator[tuple[int, int, DeviceRow]]:
    """(scenario rank, global index, row) of every device, in ``devices.csv`` order."""
    for rank, beh in enumerate(env.behaviours.values()):
        rows = beh.device_rows()
        for dev in _in_order(beh.devices):
            yield rank, dev.index, rows.row(dev)


def _device_lines(env: Environment) -> Iterator[str]:
    """Every device's part line (its key, then its line of ``devices.csv``), in that order."""
    from simulator.run.device_parts import key_format

    for rank, beh in enumerate(env.behaviours.values()):
        yield from beh.device_rows().part_lines(key_format(rank), _in_order(beh.devices))


# -- the coordinator's side -------------------------------------------------------------


class WorkerDied(ScfleetError):
    """A worker ended without its final report, or failed before it was ready (then the CLI
    prints it as one line, exit 103)."""


class PipeChannel:
    """A local worker process and the coordinator's end of its pipe."""

    def __init__(self, proc: BaseProcess, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self.where = f"pid {proc.pid}"

    def open(self, deliver: Callable[[WorkerMessage], None], gone: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        conn = self.conn

        def readable() -> None:
            try:
                while conn.poll():
                    deliver(conn.recv())
            except (EOFError, OSError):
                loop.remove_reader(conn.fileno())
                code = self.proc.exitcode
                self.proc.join(1)
                code = self.proc.exitcode if code is None else code
                gone(f"exited (code {code}) without its final report")

        watch_pipe(loop, conn, readable)

    def send(self, msg: Control) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(msg)

    def end_hung(self) -> None:
        self.proc.kill()  # SIGKILL ends a stopped process too; its pipe then closes

    def kill(self) -> None:
        """End a worker whose run never began (a held signal during the spawn, a run given
        up before its start): nothing of it is waited for but its exit."""
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    async def close(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self.conn.fileno())
        while self.proc.is_alive() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


#: what a spawning coordinator holds until its workers have their job (see :func:`signals_held`)
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait while workers are spawned, then are acted on.

    A signal whose handler raises inside ``Process.start`` (the CLI's, and Python's own for
    Ctrl-C) cut it between the fork and the write of the job: the new worker read an empty
    pipe and printed ``EOFError: Ran out of input`` with a traceback. Here both are only
    recorded, then re-raised in order to the handlers found once every worker has its job.

    Workers are born with SIGINT blocked (the mask survives exec) and ignore it before they
    unblock it (:func:`worker_main`): a terminal's Ctrl-C reaches the whole process group,
    and a worker still importing would die with a traceback. It is blocked, not ignored, in
    the coordinator, so a Ctrl-C meant for it is held, not lost."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from multiprocessing import resource_tracker

    found = signal.pthread_sigmask(signal.SIG_BLOCK, set())  # the caller's, put back after
    held: list[int] = []
    saved = [
        (sig, signal.signal(sig, lambda signum, frame: held.append(signum))) for sig in HELD_SIGNALS
    ]
    try:
        # spawn starts its resource tracker on first use and unblocks SIGINT after (its own
        # mask trick): started first, held like the rest, it cannot undo ours
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, found)  # a pending Ctrl-C is held now
        for sig, old in saved:
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        for signum in held:
            signal.raise_signal(signum)


class LocalLauncher:
    """Worker processes on this machine (multiprocessing, spawn)."""

    async def launch(self, jobs: Sequence[WorkerJob]) -> list[WorkerChannel]:
        return self.spawn(jobs)

    def spawn(self, jobs: Sequence[WorkerJob]) -> list[WorkerChannel]:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        channels: list[PipeChannel] = []
        try:
            with signals_held():
                for job in jobs:
                    mine, theirs = ctx.Pipe()
                    proc = ctx.Process(
                        target=worker_main,
                        args=(theirs, job),
                        name=f"scfleet-worker-{job.index + 1}",
                    )
                    proc.start()
                    theirs.close()
                    channels.append(PipeChannel(proc, mine))
        except BaseException:  # a held signal (or a failed start): none of them is left behind
            for channel in channels:
                channel.kill()
            raise
        return list(channels)

    async def close(self) -> None:
        pass


class WorkerPool:
    """The coordinator's view of its workers: a run companion (launched in ``prepare``,
    started together in ``run``, reaped in ``close``) and the remote runner of every scenario
    (the Environment's scenario tasks wait on :meth:`wait`). Where the workers run is the
    ``launcher``'s business (local processes by default); the merge is the same."""

    def __init__(
        self,
        cfg: RunConfig,
        url: str,
        accounts: Mapping[str, list[Account]],
        parts: int,
        *,
        tick: float = 1.0,
        launcher: WorkerLauncher | None = None,
        points: SampleStreams | None = None,
        parts_dir: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.url = url
        self.accounts = dict(accounts)
        self.parts = parts
        self.tick = tick
        self.points = points  # the run's per-sample writer (--out json=/csv=), if any
        self._part_dir = (parts_dir or Path(".")) / ".worker-parts"
        self._parts: list[tuple[tuple[str, Path], ...]] = []  # per worker: (kind, file)
        self._copied: dict[tuple[int, int], int] = {}  # (worker, stream) -> bytes taken
        self._pending: dict[int, list[Snapshot]] = {}  # snapshots whose tick is not closed
        self._seen_tick: dict[int, int] = {}
        self._start = 0.0  # loop time of the common start (second 0)
        self._closed = 0  # the last point closed: a tick up to it arriving now is late
        self._lateness: deque[float] = deque(maxlen=LATE_WINDOW * parts)
        self._late: dict[int, tuple[int, float]] = {}  # worker -> (late ticks, most late)
        self._gen: dict[int, GenFigures] = {}  # each worker's latest merged tick
        self._ticked: asyncio.Event | None = None
        self.launcher: WorkerLauncher = launcher or LocalLauncher()
        self._channels: list[WorkerChannel] = []
        self._launched = False
        self._finals: dict[int, Final] = {}
        self._gone: set[int] = set()
        self._heard: dict[int, float] = {}  # worker -> loop time of its last word (after the go)
        self._ending: set[int] = set()  # workers whose run is over (Ending): not watched
        self._ended: dict[int, float] = {}  # worker -> its run's end (Ending), from the start
        self._ready: set[int] = set()
        #: worker -> connections it opened before the go, of how many it was to open: the
        #: workers that answered Warm
        self._opened: dict[int, tuple[int, int]] = {}
        self._latest: dict[tuple[int, str], ScenarioTick] = {}
        self._env: Environment | None = None
        self._changed: asyncio.Event | None = None
        self._done: asyncio.Event | None = None
        self._failure: str | None = None
        self._failure_name = ""
        self._stopped = False
        self._scratch: Scratch | None = None  # the workers' device-row parts

    def name(self, k: int) -> str:
        return f"{worker_name(k, self.parts)[:-1]}, {self._channels[k].where})"

    # -- Companion ----------------------------------------------------------------------

    async def prepare(self, env: Environment) -> None:
        warm_imports()
        self._env = env
        self._changed = asyncio.Event()
        self._ticked = asyncio.Event()
        self._done = asyncio.Event()
        env.start_lead = max(env.start_lead, START_LEAD)
        env.samplers = [
            (prefix, FleetGenerator(s, self) if prefix == "gen" else s)
            for prefix, s in env.samplers
        ]
        for _prefix, s in env.samplers:
            if isinstance(s, FleetGenerator) and isinstance(s.own, GeneratorSampler):
                # The coordinator times no request: its loop lag is no figure (FleetGenerator
                # leaves it out), but its probe woke it every 20 ms, ~50 of its ~95 wake-ups
                # a second (30-40 more of them preempted) on the cores its workers run on.
                s.own.stop()
        # Ctrl-C/SIGTERM end the wait for the launch (a cluster placing its workers) and for
        # the workers to be ready: the run then starts and stops at once (results written)
        stopping = asyncio.ensure_future(env.stop_event.wait())
        try:
            if not self._launched:
                self._launched = True
                launching = asyncio.ensure_future(self.launcher.launch(self._jobs()))
                await asyncio.wait({launching, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not launching.done():
                    launching.cancel()
                    await asyncio.gather(launching, return_exceptions=True)
                    return
                self._channels = launching.result()
            for k, channel in enumerate(self._channels):
                channel.open(functools.partial(self._receive, k), functools.partial(self._lost, k))
            await self._until(self._ready, stopping, "ready")
            if not stopping.done():  # each opens its connections; the go waits for them all
                self._broadcast(Warm(self.url))
                await self._until(self._opened, stopping, "connected")
                env.warmed += sum(opened for opened, _asked in self._opened.values())
                env.warm_asked += sum(asked for _opened, asked in self._opened.values())
        finally:
            stopping.cancel()

    async def _until(
        self, workers: Collection[int], stopping: asyncio.Future[Any], what: str
    ) -> None:
        """Wait until ``workers`` holds every worker (a worker's failure raises, and so does
        :data:`READY_TIMEOUT`), or until ``stopping``."""
        assert self._changed is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while len(workers) < self.parts and not stopping.done():
            if self._failure is not None:
                raise WorkerDied(f"{self._failure_name}: {self._failure}")
            left = deadline - loop.time()
            if left <= 0:
                late = [self.name(k) for k in range(len(self._channels)) if k not in workers]
                raise WorkerDied(
                    f"{', '.join(late) or 'workers'} not {what} within {READY_TIMEOUT:g}s"
                )
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait(
                {changed, stopping}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            changed.cancel()

    def _jobs(self) -> list[WorkerJob]:
        from simulator.executors.runtime import arrival_quantum

        self._make_parts()
        local = isinstance(self.launcher, LocalLauncher)  # may write parts where this reads
        cpus = pinned_cpus(self.parts) if local else [None] * self.parts
        return [
            WorkerJob(
                k,
                self.parts,
                self.cfg,
                self.url,
                self.accounts,
                self.tick,
                self._samples(k),
                self._device_part(k) if local else None,
                arrival_quantum(self.parts) if local else 0.0,
                cpus[k],
            )
            for k in range(self.parts)
        ]

    def start_early(self) -> None:
        """Spawn local workers now, before the target is up (they import and build their
        audio meanwhile: the embedded server's ~1 s start is no longer added to the run's);
        the URL then travels with the go. ``prepare`` adopts them; :meth:`abandon` ends them
        if the run never gets that far."""
        assert isinstance(self.launcher, LocalLauncher)
        self._launched = True
        self._channels = self.launcher.spawn(self._jobs())

    def abandon(self) -> None:
        """End workers started early whose run never began (the target failed to start, a
        Ctrl-C meanwhile): no-op once :meth:`close` has run."""
        for channel in self._channels:
            if isinstance(channel, PipeChannel) and not channel.conn.closed:
                channel.kill()
        self._channels = []
        self._drain_parts()

    async def run(self, env: Environment, start: float) -> None:
        assert self._changed is not None and self._done is not None
        self._start = start
        go = Go(time.time() + (start - asyncio.get_running_loop().time()), self.url)
        if env.stop_event.is_set():  # stopped before the go: every worker ends unstarted
            self._stopped = True
            self._broadcast(Stop())
        else:
            self._broadcast(go)
        if not self._channels:  # stopped before the launch was done: no worker to wait for
            self._done.set()
            return
        stopping = asyncio.ensure_future(env.stop_event.wait())
        now = asyncio.get_running_loop().time()
        self._heard = dict.fromkeys(range(len(self._channels)), max(now, start))
        local = isinstance(self.launcher, LocalLauncher)
        restore = yield_to_workers() if local else None  # its workers' arrivals come first
        try:
            while len(self._finals) + len(self._gone) < self.parts:
                if stopping.done() and not self._stopped:
                    self._stopped = True
                    self._broadcast(Stop())
                self._changed.clear()
                changed = asyncio.ensure_future(self._changed.wait())
                # once the stop is sent, only a worker's word: a done ``stopping`` in the wait
                # returned at once, and the loop spun on the CPU until the workers ended
                watch = {changed} if self._stopped else {changed, stopping}
                await asyncio.wait(watch, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                self._kill_hung()
                if self._failure is not None and not env.error:
                    env.fail(self._failure_name, WorkerDied(self._failure))
        except asyncio.CancelledError:
            self._broadcast(Stop(cancel=True))
            raise
        finally:
            if restore is not None:
                restore()
            stopping.cancel()
            self._merge_ticks(math.inf)  # the last, partial ticks join the last point
            self._done.set()
        for k, (count, most) in sorted(self._late.items()):
            env.notes.append(
                f"{worker_name(k, self.parts)}: {count} tick{'s' * (count != 1)} came after "
                f"{'their' if count != 1 else 'its'} second's point had closed (up to "
                f"{most:.2f} s late) and {'were' if count != 1 else 'was'} counted in the next "
                f"point; the wait for a second grew to {self.grace():.2f} s"
            )
        for final in self._finals.values():
            for note in final.notes:
                if note not in env.notes:
                    env.notes.append(note)
            env.note_counts.extend(final.counts)  # noted once, as the run's sums
            if final.error and not env.error:
                env.fail(f"worker {final.worker + 1} of {self.parts}", RuntimeError(final.error))
            if final.interrupted and not env.aborted:
                # an abort's stop reads to a worker as a Ctrl-C; the run was aborted, as a
                # one-process run says, not interrupted (a signal or a death marks env itself)
                env.interrupted = True
            for name, count in final.unreached:
                if name in env.events:
                    env.events[name].unreached(count)
        open_model = any(sc.executor.open_model for sc in self.cfg.scenarios)
        for k in sorted(self._gone):
            if open_model:
                env.notes.append(
                    f"{worker_name(k, self.parts)} ended without its final report: what it "
                    "started or dropped since its last tick is not counted, so iterations + "
                    "dropped_iterations may fall short of the plan"
                )
            # its rows come in its final report: without it devices.csv lacks its devices,
            # and their requests (in the figures up to its last tick) in no row
            env.notes.append(
                f"devices.csv has no rows for the devices of {worker_name(k, self.parts)}: "
                "it ended without its final report, so the rows' requests add up to less "
                "than http_reqs"
            )

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._done is not None:
            self._done.set()
        grace = max((sc.graceful_stop for sc in self.cfg.scenarios), default=0.0) + 10.0
        deadline = loop.time() + grace
        try:
            for channel in self._channels:
                await channel.close(deadline)
        finally:
            if self._launched:
                await self.launcher.close()
            self._merge_ticks(math.inf)
            self._drain_parts()

    def device_rows(self) -> PartRows:
        """Every worker's device rows, merged from their parts as ``devices.csv`` is written."""
        from simulator.run.device_parts import PartRows, killed_here_for_a_test

        killed_here_for_a_test()  # the workers have ended; devices.csv is not written yet
        parts = [(self._device_part(k), f.devices_written) for k, f in self._finals.items()]
        return PartRows(self._scratch, sorted(parts))

    def _device_part(self, k: int) -> Path:
        """Worker ``k``'s device rows: its part file in the run's scratch folder."""
        if self._scratch is None:
            from simulator.run.device_parts import Scratch

            self._scratch = Scratch()
        return self._scratch.part(f"worker-{k + 1}")

    def _spill(self, k: int, final: Final) -> Final:
        """A remote worker's rows (sent in its final message) to its part, so they are not
        held here; the message without them."""
        from simulator.run.device_parts import write_part

        order = {sc.name: i for i, sc in enumerate(self.cfg.scenarios)}
        rows = sorted((order.get(n, len(order)), i, row) for n, i, row in final.devices)
        written = write_part(self._device_part(k), rows)
        return replace(final, devices=(), devices_written=written)

    def open_files(self) -> int:
        return 0  # the workers' own need is their segment's (simulator.run.limits)

    # -- remote scenarios ---------------------------------------------------------------

    async def wait(self) -> None:
        """Until every worker has ended (the Environment's scenario tasks wait here)."""
        assert self._done is not None
        await self._done.wait()

    def ended(self) -> float | None:
        if self._gone or len(self._ended) < self.parts:
            return None
        return max(self._ended.values())

    async def tick_ready(self, n: int) -> None:
        """Until every running worker's tick ``n`` is in (at most :meth:`grace`; before a
        worker's first tick, ``MAX_TICK_GRACE`` ticks), then merge every tick up to ``n`` into
        the coordinator's intervals. Before, point 1 waited half a second for first ticks that
        came 1.5 s late at overload, and closed empty."""
        assert self._ticked is not None
        loop = asyncio.get_running_loop()
        unknown = any(k not in self._seen_tick for k in self._running())
        wait = MAX_TICK_GRACE * self.tick if unknown else self.grace()
        deadline = self._start + n * self.tick + wait
        while any(self._seen_tick.get(k, 0) < n for k in self._running()):
            left = deadline - loop.time()
            if left <= 0:
                break
            self._ticked.clear()
            await wait_set(self._ticked, left)  # a cancel (the run ending) is never lost
        self._closed = n
        self._merge_ticks(n)

    def grace(self) -> float:
        """How long after its instant point n waits for every worker's tick n (seconds)."""
        seen = max(self._lateness, default=0.0) * 1.25 + 0.05 * self.tick
        return min(max(TICK_GRACE * self.tick, seen), MAX_TICK_GRACE * self.tick)

    def _running(self) -> list[int]:
        return [
            k for k in range(len(self._channels)) if k not in self._finals and k not in self._gone
        ]

    # -- per-sample parts ---------------------------------------------------------------

    def _make_parts(self) -> None:
        """One part file per worker and stream (``--out json=/csv=``), in the run folder:
        workers on this machine only (a cluster's workers cannot write there)."""
        if self.points is None or not self.points.kinds:
            return
        if not isinstance(self.launcher, LocalLauncher):
            raise WorkerDied("per-sample streams (--out json=/csv=) need workers on this machine")
        self._part_dir.mkdir(parents=True, exist_ok=True)
        for k in range(self.parts):
            files = tuple(
                (kind, self._part_dir / f"{kind}-{k + 1}.part") for kind in self.points.kinds
            )
            for _kind, path in files:
                path.write_bytes(b"")
            self._parts.append(files)

    def _samples(self, k: int) -> SampleParts | None:
        if self.points is None or not self._parts:
            return None
        return self.points.part_spec(tuple(path for _kind, path in self._parts[k]))

    def _take_part(self, k: int, i: int, end: int) -> None:
        """Worker ``k``'s stream ``i`` up to byte ``end`` into the run's file."""
        assert self.points is not None
        start = self._copied.get((k, i), 0)
        if end <= start:
            return
        kind, path = self._parts[k][i]
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read(end - start)
        except OSError:
            return
        self._copied[(k, i)] = start + len(data)
        self.points.adopt(kind, data)

    def _drain_parts(self) -> None:
        """What the workers wrote after their last merged tick (a worker that died, an
        interrupt), up to the last whole line; then the parts go."""
        if not self._parts:
            return
        for k, files in enumerate(self._parts):
            for i, (kind, path) in enumerate(files):
                try:
                    size = path.stat().st_size
                    with open(path, "rb") as fh:
                        fh.seek(self._copied.get((k, i), 0))
                        tail = fh.read(max(size - self._copied.get((k, i), 0), 0))
                except OSError:
                    continue
                whole = tail[: tail.rfind(b"\n") + 1]
                self._copied[(k, i)] = self._copied.get((k, i), 0) + len(whole)
                if whole:
                    assert self.points is not None
                    self.points.adopt(kind, whole)
        import shutil

        shutil.rmtree(self._part_dir, ignore_errors=True)
        self._parts = []

    # -- the channels -----------------------------------------------------------------

    def _send(self, k: int, msg: Control) -> None:
        if k in self._gone or k in self._finals or k >= len(self._channels):
            return
        self._channels[k].send(msg)

    def _broadcast(self, msg: Control) -> None:
        for k in range(self.parts):
            self._send(k, msg)

    def _lost(self, k: int, reason: str) -> None:
        """Worker ``k`` ended without a word more."""
        if k not in self._finals:
            self._gone.add(k)
            if self._failure is None:
                self._failure_name = self.name(k)
                self._failure = reason
            self._broadcast(Stop())
        assert self._changed is not None and self._ticked is not None
        self._changed.set()
        self._ticked.set()

    def _kill_hung(self) -> None:
        """Kill every worker, local or a Ray actor, silent for :data:`HUNG_AFTER` before its
        run was over (a stopped process, a device blocking its loop): the run then ends as
        for a dead one. Before, the coordinator waited for its final report forever (a Ray
        actor's poll answers from another thread while its loop is blocked)."""
        now = asyncio.get_running_loop().time()
        for k in self._running():
            if k in self._ending:
                continue
            if now - self._heard.get(k, now) >= HUNG_AFTER:
                self._channels[k].end_hung()
                self._lost(k, f"sent nothing for {HUNG_AFTER:.0f} s (hung): killed")

    def _receive(self, k: int, msg: WorkerMessage) -> None:
        if k in self._heard:
            self._heard[k] = asyncio.get_running_loop().time()
        if isinstance(msg, Ending):
            self._ending.add(k)
            if msg.ended is not None:
                self._ended[k] = msg.ended
        if isinstance(msg, Snapshot):
            late = asyncio.get_running_loop().time() - (self._start + msg.tick * self.tick)
            if msg.tick <= self._closed:  # its point closed without it: it joins the next
                count, most = self._late.get(k, (0, 0.0))
                self._late[k] = (count + 1, max(most, late))
            if self._start:
                self._lateness.append(max(late, 0.0))
            self._merge_series(msg)  # totals at once (thresholds); the tick at its point
            self._pending.setdefault(k, []).append(msg)
            self._seen_tick[k] = max(self._seen_tick.get(k, 0), msg.tick)
        elif isinstance(msg, Ready):
            if msg.warmed:
                self._opened[k] = (msg.opened, msg.asked)
            else:
                self._ready.add(k)
        elif isinstance(msg, Final):
            self._finals[k] = self._spill(k, msg) if msg.devices else msg
        elif isinstance(msg, Failed) and self._failure is None:
            self._failure_name = self.name(k)
            self._failure = msg.error
        assert self._changed is not None and self._ticked is not None
        self._changed.set()
        self._ticked.set()

    def _merge_series(self, snap: Snapshot) -> None:
        env = self._env
        assert env is not None
        reg = env.registry
        points = self.points
        for d in snap.series:
            if d.metric not in reg.types:
                reg.define(d.metric, d.mtype, d.contains)
            reg.get(d.metric, d.tags).merge(d.value)
            if points is not None:  # the worker wrote these samples: not the coordinator
                points.written_elsewhere(d.metric, d.tags, d.value)

    def _merge_ticks(self, upto: float) -> None:
        """Every pending snapshot up to tick ``upto``, worker by worker, into the intervals
        (and their per-sample parts into the run's files)."""
        for k in sorted(self._pending):
            mine = self._pending[k]
            while mine and mine[0].tick <= upto:
                self._merge_tick(mine.pop(0))

    def _merge_tick(self, snap: Snapshot) -> None:
        env = self._env
        assert env is not None
        if snap.gen is not None:
            self._gen[snap.worker] = snap.gen
        if self.points is not None and self._parts:
            for i, end in enumerate(snap.parts):
                self._take_part(snap.worker, i, end)
        for tick in snap.scenarios:
            live = env.intervals.get(tick.name)
            if live is None:
                continue
            s = tick.stats
            live.requests += s.requests
            live.failed += s.failed
            live.dropped += s.dropped
            live.pool_full += s.pool_full
            live.iterations += s.iterations
            live.interrupted += s.interrupted
            live.think_cut += s.think_cut
            live.iteration_errors += s.iteration_errors
            live.sent += s.sent
            live.received += s.received
            live.hist.merge(s.hist)
            self._latest[(snap.worker, tick.name)] = tick
            ticks = [t for (_w, n), t in self._latest.items() if n == tick.name]
            ev = env.events[tick.name]
            ev.active(sum(t.active for t in ticks))
            ev.peak = max(ev.peak, sum(t.peak for t in ticks))
            ev.allocated = sum(t.allocated for t in ticks)


def warm_imports() -> None:
    """What building, sending, unpickling and merging a snapshot needs (histograms as numpy
    arrays, pickled), imported before the run. The coordinator records no requests itself,
    and importing numpy at the first snapshot held its loop ~0.5 s mid-run (busy), so the
    workers' first ticks missed their point; a worker of Python devices (no audio bank)
    imported them in its own first tick (146 ms of CPU: the tick closed 0.2 s late, quiet)."""
    import pickle  # noqa: F401

    import numpy  # noqa: F401


def schedule_figures(
    figures: GenFigures,
    scenarios: Sequence[ScenarioTick],
    deltas: Sequence[SeriesDelta],
    quantum: float = 0.0,
) -> GenFigures:
    """A worker's figures with its own schedule of the tick: what it dropped of what it had
    to start, and the p99 start lag of its iterations (from the tick's ``schedule_lag``)
    beyond its arrival ``quantum``: that lateness is by design (runtime.arrival_quantum), not
    a sign of saturation (an idle 2-worker run at 6 % CPU was called saturated at 5.2 ms).
    Drops by an exhausted device pool (``pool_full``: every device busy at ``max_devices``)
    are a configuration limit, not the worker's: in ``scheduled``, not in ``dropped``."""
    dropped = sum(t.stats.dropped - t.stats.pool_full for t in scenarios)
    lag = Histogram()
    for d in deltas:
        if d.metric == "schedule_lag" and isinstance(d.value, Trend):
            lag.merge(d.value.hist)
    p99 = max(lag.percentile(99) / 1000 - quantum * 1000, 0.0) if lag.count else None
    scheduled = sum(t.stats.dropped + t.stats.iterations for t in scenarios)
    return replace(figures, dropped=dropped, scheduled=scheduled, start_lag_p99_ms=p99)


class FleetGenerator:
    """The ``gen.*`` columns with workers: each process's generator figures of the tick (the
    coordinator's from its own sampler, each worker's from its snapshot). ``cpu_percent``,
    ``cpu_demand`` are the worst process's (each is one event loop: one core), the lags the
    worst worker's (the coordinator's times nothing);
    ``cpu_percent_sum`` is all of them; ``dropped_share`` and ``start_lag_p99_ms`` the worst
    worker's own schedule; ``worker`` is the process nearest saturation by the stage table's
    rules (0: the coordinator, k: worker k), ``workers`` how many there are."""

    def __init__(self, own: Sampler, pool: WorkerPool) -> None:
        self.own = own
        self.pool = pool

    def sample(self) -> Mapping[str, float | None]:
        own = self.own.sample()
        # the coordinator times no request: its loop lag (on a loaded machine, its wait for a
        # core: CPU 2 %, lag 232 ms) makes no figure late, so it is not the generator's lag
        own = {k: v for k, v in own.items() if k not in ("loop_lag_ms", "loop_lag_max_ms")}
        procs = [(0, GenFigures.of(own))]
        procs += [(k + 1, f) for k, f in sorted(self.pool._gen.items())]
        worst = max(procs, key=lambda p: p[1].pressure)[0]

        def top(values: list[float | None]) -> float | None:
            got = [v for v in values if v is not None]
            return max(got) if got else None

        figures = [f for _k, f in procs]
        out: dict[str, float | None] = {
            "cpu_percent": max(f.cpu_percent for f in figures),
            "cpu_percent_sum": sum(f.cpu_percent for f in figures),
            "worker": float(worst),
            "workers": float(self.pool.parts),
        }
        for key in ("cpu_demand", "loop_lag_ms", "loop_lag_max_ms", "start_lag_p99_ms"):
            value = top([getattr(f, key) for f in figures])
            if value is not None:
                out[key] = value
        share = top([f.dropped_share for f in figures])
        if share is not None:
            out["dropped_share"] = share
        return out


__all__ = [
    "LocalLauncher",
    "WorkerChannel",
    "WorkerDied",
    "WorkerEnd",
    "WorkerLauncher",
    "WorkerPool",
    "auto_workers",
    "cpu_count",
    "run_worker",
    "segment_config",
    "worker_main",
    "worker_name",
]
