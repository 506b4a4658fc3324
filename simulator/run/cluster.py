"""Workers on a Ray cluster (issue 12): ``scfleet run CONFIG --cluster ADDRESS``.

The same worker code as local workers (:func:`simulator.run.workers.run_worker`: segment k of
N on its own event loop) runs in Ray actors, one per segment, reserved by a placement group
with strategy SPREAD (one bundle per worker), so they land on as many nodes as the cluster
has. The coordinator's :class:`~simulator.run.workers.WorkerPool` merges their per-second
snapshots exactly as local workers': only the channel differs. An actor keeps an outbox that
the coordinator long-polls from one thread per actor (``poll``), handing each message to its
event loop with ``call_soon_threadsafe``; Go/Stop travel as ``control`` calls.

Before any load: every actor must run the same scfleet (version and code fingerprint) and
Python minor as the coordinator (the code is not shipped: every node installs the project),
and a target on loopback is refused when a worker runs on another machine.

``import ray`` happens only inside functions here: the engine imports without the extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import os
import queue
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scfleet_core.errors import ClusterError, ConfigError
from simulator.run.workers import (
    READY_TIMEOUT,
    Control,
    Final,
    Go,
    WorkerChannel,
    WorkerJob,
    WorkerMessage,
    run_worker,
)

if TYPE_CHECKING:
    from simulator.config import RunConfig

#: the extra that brings Ray (pyproject.toml)
EXTRA = "cluster"
#: How often ``connect`` tries a Ray client address whose proxy failed to start our server.
CLIENT_ATTEMPTS = 3
#: The Ray client proxy's message for that transient failure (ray/util/client/server/proxier.py).
CLIENT_START_FAILED = "Starting Ray client server failed"
#: how long one long-poll waits for a worker's message (bounds how late close() notices)
POLL_SECONDS = 1.0
#: a poll unanswered this long past its wait means the actor's node is unreachable
POLL_GRACE = 30.0
#: the packages a worker runs: their sources make the code fingerprint
WORKER_PACKAGES = ("simulator", "scfleet_core", "audio_synth")


def _ray() -> Any:
    """``import ray``, or the one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--cluster needs Ray, which is not installed: pip install 'scfleet[{EXTRA}]' "
            f"(the {EXTRA} extra)",
            source="--cluster",
        ) from None
    return ray


# -- what runs where ---------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """What a process runs: the scfleet distribution's version, a fingerprint of the
    worker's sources (an editable install keeps its version as the code changes), Python."""

    version: str
    code: str
    python: str

    def __str__(self) -> str:
        return f"scfleet {self.version} (code {self.code}), Python {self.python}"


@functools.cache
def local_build() -> Build:
    from importlib import metadata

    try:
        version = metadata.version("scfleet")
    except metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256()
    for name in WORKER_PACKAGES:
        root = Path(__file__).resolve().parents[2] / name
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return Build(version, digest.hexdigest()[:12], "{}.{}".format(*sys.version_info[:2]))


@dataclass(frozen=True)
class Host:
    """A machine as far as loopback goes: its hostname and its interface addresses."""

    hostname: str
    addresses: frozenset[str]


def local_host() -> Host:
    import psutil

    addrs = {
        a.address.split("%")[0]
        for nics in psutil.net_if_addrs().values()
        for a in nics
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }
    return Host(socket.gethostname(), frozenset(addrs))


@dataclass(frozen=True)
class ActorInfo:
    """Where one worker actor runs, and what it runs (answered by the actor itself)."""

    actor_id: str
    node_id: str
    node_ip: str
    hostname: str
    pid: int
    build: Build

    @property
    def where(self) -> str:
        return f"actor {self.actor_id[:12]}, node {self.node_ip}, pid {self.pid}"


#: a worker's clock this far from the coordinator's (seconds) is a note in the summary
CLOCK_WARN = 0.1
#: round trips per worker to read its clock (the one with the shortest trip counts)
CLOCK_READS = 5


@dataclass(frozen=True)
class Clock:
    """A worker's wall clock against the coordinator's, read over a round trip."""

    offset: float  # its time.time() minus ours at the same instant (> 0: it is ahead)
    rtt: float  # the round trip the reading took: the offset is known to ± rtt / 2

    @classmethod
    def best(cls, reads: Sequence[tuple[float, float, float]]) -> Clock:
        """From ``(sent, its clock, answered)`` readings (ours, its, ours): the shortest trip,
        whose midpoint is the best guess of when its clock was read."""
        sent, theirs, answered = min(reads, key=lambda r: r[2] - r[0])
        return cls(theirs - (sent + answered) / 2, answered - sent)


def _is_loopback_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:
        return False


def target_on_loopback(url: str) -> bool:
    """Whether the target's host is this machine's loopback: 127.0.0.0/8, ::1, localhost, or
    a name that resolves to loopback only."""
    host = urlsplit(url).hostname or ""
    if _is_loopback_ip(host):
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(_is_loopback_ip(str(i[4][0])) for i in infos)


def on_this_machine(info: ActorInfo, here: Host) -> bool:
    """An actor shares the coordinator's loopback when it runs on the same host name at a
    loopback address or one of this machine's addresses (a two-node cluster started on
    127.0.0.1 is one machine; a pod or another host is not)."""
    return info.hostname == here.hostname and (
        _is_loopback_ip(info.node_ip) or info.node_ip in here.addresses
    )


def check_workers(
    url: str,
    workers: Sequence[tuple[str, ActorInfo]],
    *,
    build: Build | None = None,
    here: Host | None = None,
) -> None:
    """The checks before any load, each a one-line error naming the worker: the same build
    everywhere; no loopback target for workers on other machines."""
    build = build or local_build()
    for name, info in workers:
        if info.build != build:
            raise ClusterError(
                f"{name} runs {info.build} but this process runs {build}: install the same "
                "scfleet on every node of the cluster"
            )
    if target_on_loopback(url):
        here = here or local_host()
        for name, info in workers:
            if not on_this_machine(info, here):
                raise ConfigError(
                    f"target {url} is on loopback but {name} runs on another machine "
                    f"({info.hostname}, {info.node_ip}): give the target's network address",
                    source="--cluster",
                )


def check_files(cfg: RunConfig) -> None:
    """On a node, before the worker says it is ready: every file or module a scenario names
    (``python:`` devices) is there — the code is not shipped, so a node without it would
    fail only once the load had started on the others."""
    from simulator.config.model import PythonDevice

    for sc in cfg.scenarios:
        dev = sc.device
        if not isinstance(dev, PythonDevice) or dev.code is None:
            continue
        path, module = dev.code.path, dev.code.module
        missing = not path.is_file() if path is not None else _no_module(module)
        if missing:
            raise ConfigError(
                f"scenarios.{sc.name}.device.kind names {'a file' if path else 'a module'} "
                "this node does not have (every node needs it at the same path)",
                source=str(path) if path is not None else module,
            )


def _no_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


# -- the actor ---------------------------------------------------------------------------


class ClusterWorker:
    """A Ray actor running one worker. Its methods run on a small thread pool
    (``max_concurrency``): ``run`` holds one thread for the whole run while ``poll`` and
    ``control`` answer the coordinator."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._outbox: list[WorkerMessage] = []
        self._ended = False
        self._inbox: queue.Queue[Control] = queue.Queue()
        self._listener: tuple[asyncio.AbstractEventLoop, Callable[[Control | None], None]]
        self._listening = False

    def describe(self) -> ActorInfo:
        ray = _ray()

        ctx = ray.get_runtime_context()
        return ActorInfo(
            str(ctx.get_actor_id()),
            str(ctx.get_node_id()),
            str(ray.util.get_node_ip_address()),
            socket.gethostname(),
            os.getpid(),
            local_build(),
        )

    def run(self, job: WorkerJob) -> None:
        from simulator.run.limits import ensure_open_files, files_needed
        from simulator.run.workers import Failed, segment_config

        try:
            try:
                check_files(job.cfg)
                ensure_open_files(files_needed(segment_config(job.cfg, job.index, job.parts)))
            except Exception as exc:  # noqa: BLE001 - reported to the coordinator
                self.send(Failed(job.index, f"{type(exc).__name__}: {str(exc)[:200]}"))
                return
            with contextlib.suppress(Exception):  # run_worker reported it (Failed)
                run_worker(self, job)
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def clock(self) -> float:
        """This node's wall clock (:class:`Clock`)."""
        import time

        return time.time()

    def poll(self, timeout: float) -> tuple[list[WorkerMessage], bool]:
        """The messages since the last poll (waiting up to ``timeout`` for one), and whether
        the worker has ended (nothing more will come)."""
        with self._cond:
            self._cond.wait_for(lambda: self._outbox or self._ended, timeout)
            out, self._outbox = self._outbox, []
            return out, self._ended

    def control(self, msg: Control) -> None:
        with self._cond:  # under the lock: listen() drains the inbox under it too
            if not self._listening:
                self._inbox.put(msg)
                return
            loop, on_message = self._listener
            with contextlib.suppress(RuntimeError):  # the run's loop is closed
                loop.call_soon_threadsafe(on_message, msg)

    # -- WorkerEnd (the worker's side, in the run thread) ---------------------------------

    def send(self, msg: WorkerMessage) -> None:
        with self._cond:
            self._outbox.append(msg)
            self._cond.notify_all()

    def recv(self) -> Control:
        try:
            return self._inbox.get(timeout=READY_TIMEOUT + POLL_GRACE)
        except queue.Empty:
            raise TimeoutError("no word from the coordinator") from None

    def listen(
        self, loop: asyncio.AbstractEventLoop, on_message: Callable[[Control | None], None]
    ) -> None:
        with self._cond:
            self._listener = (loop, on_message)
            self._listening = True
            while not self._inbox.empty():  # a Stop that came before the loop listened
                loop.call_soon_threadsafe(on_message, self._inbox.get_nowait())

    def unlisten(self) -> None:
        with self._cond:
            self._listening = False


# -- the coordinator's side --------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


class RayChannel:
    """The coordinator's end of one actor: a thread long-polls its outbox."""

    def __init__(self, actor: Any, info: ActorInfo, done: Any, clock: Clock | None = None) -> None:
        self.actor = actor
        self.info = info
        self.done = done  # the ObjectRef of actor.run
        self.where = info.where
        self.clock = clock or Clock(0.0, 0.0)
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, deliver: Callable[[WorkerMessage], None], gone: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._pump, args=(loop, deliver, gone), name=f"scfleet-ray-{self.where}"
        )
        self._thread.daemon = True
        self._thread.start()

    def _pump(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[WorkerMessage], None],
        gone: Callable[[str], None],
    ) -> None:
        ray = _ray()

        def hand(fn: Callable[[Any], None], arg: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
                loop.call_soon_threadsafe(fn, arg)

        while not self._closing.is_set():
            try:
                msgs, ended = ray.get(
                    self.actor.poll.remote(POLL_SECONDS), timeout=POLL_SECONDS + POLL_GRACE
                )
            except ray.exceptions.GetTimeoutError:
                hand(gone, f"no answer for {POLL_GRACE:g}s (node lost?)")
                return
            except Exception as exc:  # noqa: BLE001 - the actor died: report it, once
                if not self._closing.is_set():
                    hand(gone, f"died: {_one_line(exc)}")
                return
            for msg in msgs:
                hand(deliver, msg)
                if isinstance(msg, Final):
                    return
            if ended:
                hand(gone, "ended without its final report")
                return

    def send(self, msg: Control) -> None:
        if isinstance(msg, Go):  # the common start on the actor's own clock
            msg = replace(msg, start=msg.start + self.clock.offset)
        with contextlib.suppress(Exception):  # a dead actor is reported by the poll
            self.actor.control.remote(msg)

    def end_hung(self) -> None:
        """``ray.kill`` is a call to the cluster: made off the loop. The poll then finds the
        actor dead and reports it gone."""
        ray = _ray()

        def kill() -> None:
            with contextlib.suppress(Exception):  # gone already: the poll says so
                ray.kill(self.actor, no_restart=True)

        threading.Thread(target=kill, name=f"scfleet-ray-kill-{self.where}", daemon=True).start()

    async def close(self, deadline: float) -> None:
        ray = _ray()

        loop = asyncio.get_running_loop()
        left = max(deadline - loop.time(), 0.0)
        await asyncio.to_thread(ray.wait, [self.done], timeout=left)
        self._closing.set()
        with contextlib.suppress(Exception):
            ray.kill(self.actor)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, POLL_SECONDS + 5)


class RayCluster:
    """A Ray cluster as the workers' launcher (:class:`~simulator.run.workers.WorkerLauncher`).

    ``address``: ``ray://HOST:PORT`` (Ray client), ``HOST:PORT`` (the GCS, from a node of the
    cluster) or ``auto`` (``RAY_ADDRESS``, else the cluster started on this machine).
    :meth:`connect` in the main thread before the run (``ray.init`` runs in a thread, so a
    Ctrl-C or SIGTERM while it connects is the run's); :meth:`disconnect` after it."""

    def __init__(self, address: str, *, announce: bool = False) -> None:
        self.address = address
        self.announce = announce
        self._owns = False
        self._pg: Any = None
        self._actors: list[Any] = []
        self._abort = threading.Event()  # the launch was cancelled: stop waiting for Ray
        #: where each worker ran (after launch), for config.json and messages
        self.workers: list[ActorInfo] = []
        self.clocks: list[Clock] = []  # each worker's clock against this one

    @property
    def shown(self) -> str:
        if self.address == "auto":
            return os.environ.get("RAY_ADDRESS") or "auto"
        return self.address

    def connect(self) -> None:
        ray = _ray()
        if ray.is_initialized():  # a library caller connected already: use it, leave it
            return
        shown = self.shown
        if shown != "auto":
            _probe(shown)  # a refused port fails now: ray.init would retry for minutes
        for attempt in range(1, CLIENT_ATTEMPTS + 1):
            try:
                self._init(ray)
                break
            except Exception as exc:  # noqa: BLE001 - any failure to connect is one line
                # The Ray client proxy starts one server process per client; on a loaded head
                # that start can miss the proxy's own deadline ("Starting Ray client server
                # failed"). That is transient: try again, a bounded number of times.
                if attempt < CLIENT_ATTEMPTS and CLIENT_START_FAILED in str(exc):
                    with contextlib.suppress(Exception):
                        ray.shutdown()
                    time.sleep(attempt)
                    continue
                raise ClusterError(f"cannot connect to Ray at {shown}: {_one_line(exc)}") from None
        self._owns = True

    def _init(self, ray: Any) -> None:
        """``ray.init`` in a thread while this (main) thread waits: connecting to a GCS blocks
        in Ray's C++ for up to ~35 s, holding a Ctrl-C (KeyboardInterrupt) until it returned,
        and Ray would put its own SIGTERM handler in place of the run's (exit 15). Waiting
        here, either signal is the run's at once: "interrupted", exit 105."""
        outcome: list[BaseException | None] = []

        def init() -> None:
            try:
                with warnings.catch_warnings():  # Ray client's timeout warning: we say it once
                    warnings.simplefilter("ignore")
                    ray.init(
                        address=self.address,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                        configure_logging=True,
                    )
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome.append(exc)
            else:
                outcome.append(None)

        quiet = _NotMainThread()
        logging.getLogger("ray._private.worker").addFilter(quiet)  # we wanted that
        try:
            thread = threading.Thread(target=init, name="scfleet-ray-init", daemon=True)
            thread.start()
            while thread.is_alive():
                thread.join(ABORT_SLICE)  # a signal's KeyboardInterrupt is raised here
        except BaseException:
            if not outcome:  # not thread.is_alive(): a join cut by a signal may call it stopped
                _ABANDONED.set()
            raise
        finally:
            logging.getLogger("ray._private.worker").removeFilter(quiet)
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def disconnect(self) -> None:
        if self._owns:
            ray = _ray()

            with contextlib.suppress(Exception):
                ray.shutdown()
            self._owns = False

    def cpus(self) -> int:
        """The cluster's CPUs (``--workers auto`` with a cluster: one worker per CPU)."""
        ray = _ray()

        return max(int(ray.cluster_resources().get("CPU", 1)), 1)

    async def launch(self, jobs: Sequence[WorkerJob]) -> list[WorkerChannel]:
        """Place and start the actors (in a thread: Ray's calls block). Cancelled (Ctrl-C
        while the placement group waits for room), the thread stops within a slice and
        :meth:`close` removes what it reserved."""
        self._abort.clear()
        placing = asyncio.ensure_future(asyncio.to_thread(self._launch, jobs))
        try:
            return await asyncio.shield(placing)
        except asyncio.CancelledError:
            self._abort.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await placing
            raise

    def _until(self, ready: Callable[[float], bool], timeout: float) -> bool:
        """``ready(slice)`` in slices until it is true (True), ``timeout`` passes (False) or
        the launch is aborted (:class:`_Aborted`)."""
        import time

        deadline = time.monotonic() + timeout
        while not self._abort.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if ready(min(ABORT_SLICE, left)):
                return True
        raise _Aborted

    def _launch(self, jobs: Sequence[WorkerJob]) -> list[WorkerChannel]:
        ray = _ray()
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        n = len(jobs)
        total = float(ray.cluster_resources().get("CPU", 0.0))
        # one CPU per worker, or an equal share when there are more workers than CPUs
        share = 1.0 if total >= n else max(int(total / n * 100) / 100, 0.01)
        self._pg = placement_group([{"CPU": share}] * n, strategy="SPREAD")
        if not self._until(self._pg.wait, READY_TIMEOUT):
            raise ClusterError(
                f"Ray at {self.shown} could not place {n} workers of {share:g} CPU within "
                f"{READY_TIMEOUT:g}s (the cluster has {total:g} CPUs)"
            )
        actor_cls = ray.remote(ClusterWorker)
        for k in range(n):
            self._actors.append(
                actor_cls.options(
                    num_cpus=share,
                    max_concurrency=4,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        placement_group=self._pg, placement_group_bundle_index=k
                    ),
                ).remote()
            )
        refs = [a.describe.remote() for a in self._actors]
        try:
            started = self._until(
                lambda t: not ray.wait(refs, num_returns=len(refs), timeout=t)[1], READY_TIMEOUT
            )
            infos: list[ActorInfo] = ray.get(refs, timeout=0 if started else 1e-3)
        except _Aborted:
            raise
        except Exception as exc:  # noqa: BLE001 - one line naming the cluster
            raise ClusterError(
                f"Ray at {self.shown}: workers did not start: {_one_line(exc)}"
            ) from None
        # the node's own address as Ray knows it (inside an actor Ray only guesses it)
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        infos = [replace(i, node_ip=str(ips.get(i.node_id, i.node_ip))) for i in infos]
        self.workers = infos
        self.clocks = [self._read_clock(a) for a in self._actors]
        check_workers(
            jobs[0].url,
            [(_name(job, n, info), info) for job, info in zip(jobs, infos, strict=True)],
        )
        if self.announce:
            nodes = len({i.node_id for i in infos})
            sys.stderr.write(
                f"scfleet: {n} worker{'s' * (n != 1)} on Ray at {self.shown} "
                f"({nodes} node{'s' * (nodes != 1)})\n"
            )
        for line in self.notes() if self.announce else ():
            sys.stderr.write(f"scfleet: {line}\n")
        return [
            RayChannel(actor, info, actor.run.remote(job), clock)
            for actor, info, job, clock in zip(self._actors, infos, jobs, self.clocks, strict=True)
        ]

    def _read_clock(self, actor: Any) -> Clock:
        import time

        ray = _ray()
        reads = []
        for _ in range(CLOCK_READS):
            sent = time.time()
            theirs = float(ray.get(actor.clock.remote(), timeout=READY_TIMEOUT))
            reads.append((sent, theirs, time.time()))
        return Clock.best(reads)

    def notes(self) -> list[str]:
        """A worker whose clock is off by more than ``CLOCK_WARN``: its start is corrected
        (the go carries the instant on its clock), but NTP on the nodes is the cure."""
        n = len(self.workers)
        return [
            f"worker {k + 1} of {n} ({info.where}): its clock is {abs(c.offset):.3f} s "
            f"{'ahead of' if c.offset > 0 else 'behind'} this machine's (read over a "
            f"{c.rtt * 1000:.0f} ms round trip); its start was moved to match — keep the "
            "nodes' clocks in sync (NTP)"
            for k, (info, c) in enumerate(zip(self.workers, self.clocks, strict=False))
            if abs(c.offset) > CLOCK_WARN
        ]

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def record(self) -> dict[str, Any]:
        """Where the run's workers ran, for config.json."""
        clocks = self.clocks
        return {
            "address": self.shown,
            "build": str(local_build()),
            "workers": [
                {
                    "worker": k + 1,
                    "actor_id": i.actor_id,
                    "node_id": i.node_id,
                    "node_ip": i.node_ip,
                    "hostname": i.hostname,
                    "pid": i.pid,
                    "clock_offset_s": round(clocks[k].offset, 6) if k < len(clocks) else None,
                    "clock_rtt_s": round(clocks[k].rtt, 6) if k < len(clocks) else None,
                }
                for k, i in enumerate(self.workers)
            ],
        }

    def _close(self) -> None:
        ray = _ray()
        from ray.util.placement_group import remove_placement_group

        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors = []
        if self._pg is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self._pg)
            self._pg = None


#: how often a launch waiting for Ray (placement, actors starting) looks for a cancel
ABORT_SLICE = 0.25


class _Aborted(Exception):
    """The launch was cancelled while it waited for Ray."""


#: set once a ``ray.init`` was left running in its thread (a signal came while it connected)
_ABANDONED = threading.Event()


def init_abandoned() -> bool:
    """Whether a ``ray.init`` was abandoned in this process. Ray's atexit ``shutdown`` would
    then run beside it and log after the CLI's last line: the CLI leaves by ``os._exit``."""
    return _ABANDONED.is_set()


class _NotMainThread(logging.Filter):
    """Drops Ray's warning that ``ray.init`` outside the main thread sets no SIGTERM handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


#: how long connecting to the cluster's port may take before the address is called dead
PROBE_SECONDS = 5.0


def _probe(address: str) -> None:
    """A TCP connect to ``[ray://]HOST:PORT``, or the one-line error ``ray.init`` would take
    minutes to give (it retries an unreachable GCS far longer than a run should wait)."""
    host, _sep, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or "no answer"
        raise ClusterError(f"cannot connect to Ray at {address}: {why}") from None


def _name(job: WorkerJob, n: int, info: ActorInfo) -> str:
    return f"worker {job.index + 1} of {n} ({info.where})"


__all__ = [
    "ActorInfo",
    "Build",
    "ClusterWorker",
    "Host",
    "RayCluster",
    "check_workers",
    "local_build",
    "target_on_loopback",
]
