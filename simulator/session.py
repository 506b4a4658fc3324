"""One run, end to end, inside the engine: the target, the accounts, the event loop, the result.

The engine knows the server under test and the boards only through the two seams named here
and in :mod:`simulator.run.runner`: a :class:`TargetProvider` (what gives the URL and the process
to sample, and is stopped at the end: a URL given with ``--target``, or scfleet's embedded
reference server) and a :class:`~simulator.run.runner.Companion` (something that joins the run
beside the scenarios: the board fleet). The composition root (``scfleet``) supplies both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from scfleet_core.errors import TargetError
from simulator.config import RunConfig, check_url_filters
from simulator.run.devices import Account
from simulator.run.runner import Companion, ProgressHook, RunResult

if TYPE_CHECKING:
    from simulator.report.output import RunStream
    from simulator.report.streams import PointWriter
    from simulator.run.workers import WorkerLauncher, WorkerPool


@dataclass(frozen=True)
class Target:
    """The server under test as the run sees it."""

    url: str
    pid: int | None = None  # a process (tree) to sample as the server, when known


class TargetProvider(Protocol):
    """Gives the run its server under test: ``prepare`` (accounts it made for auth scenarios,
    before anything is contacted), ``start`` (the target), ``stop`` (always called)."""

    def prepare(self, cfg: RunConfig) -> Mapping[str, list[Account]]: ...

    def start(self) -> Target: ...

    def stop(self) -> None: ...


#: Makes a companion for this run from its config (None: not for this run), before anything
#: starts; it learns the target's URL from ``Environment.target`` in ``prepare``.
CompanionFactory = Callable[[RunConfig], Companion | None]


class GivenTarget:
    """A server someone else runs (``--target URL``): checked for a listener, never stopped."""

    def __init__(self, url: str, pid: int | None = None) -> None:
        self.url = url
        self.pid = pid

    def prepare(self, cfg: RunConfig) -> Mapping[str, list[Account]]:
        return {}

    def start(self) -> Target:
        check_reachable(self.url)
        return Target(self.url, self.pid)

    def stop(self) -> None:
        return None


#: a test's hook: the run sends itself SIGTERM once its loop has closed (its own signal
#: handlers gone), before the results are written (tests/scfleet/test_workers_sigterm.py)
TERM_AFTER_LOOP_ENV = "SCFLEET_TEST_TERM_AFTER_LOOP"


class RunSignals:
    """Ctrl-C and SIGTERM from the start of the run's loop until its results are written.

    While the loop runs each signal is handed to it (stop, cancel in-flight, give up); before
    and after, it is only counted (the run then exits 105, results written). The loop's own
    handlers (``add_signal_handler``) reset SIGTERM to the default as the loop closed: one
    arriving then killed the process before anything was written."""

    def __init__(self) -> None:
        self.count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_signal: Callable[[], None] | None = None
        self._saved: list[tuple[int, Any]] = []

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._saved:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved.append((sig, signal.signal(sig, self._handler)))

    def attach(self, loop: asyncio.AbstractEventLoop, on_signal: Callable[[], None]) -> None:
        """Hand the signals to ``loop`` (``on_signal`` runs on it) while it is open, those
        counted since :meth:`install` first (the run then starts and stops at once)."""
        self._loop, self._on_signal = loop, on_signal
        for _ in range(self.count):
            loop.call_soon(on_signal)

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        loop, call = self._loop, self._on_signal
        if loop is not None and call is not None and not loop.is_closed():
            loop.call_soon_threadsafe(call)

    def restore(self) -> None:
        """Put back the handlers found, where nobody (the CLI's deferral) replaced ours."""
        for sig, old in self._saved:
            if old is not None and signal.getsignal(sig) == self._handler:
                signal.signal(sig, old)
        self._saved.clear()
        self._loop = self._on_signal = None


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URL, when nothing listens at the target."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        raise TargetError(f"cannot reach {url}: connection refused") from None
    except TimeoutError:
        raise TargetError(f"cannot reach {url}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise TargetError(f"cannot reach {url}: {exc.strerror or exc}") from None


def run_session(
    cfg: RunConfig,
    target: TargetProvider,
    run_dir: Path,
    effective: dict[str, Any],
    *,
    companions: Sequence[CompanionFactory] = (),
    points: PointWriter | None = None,
    quiet: bool = True,
    no_color: bool = False,
    on_finished: Callable[[], None] | None = None,
    workers: int = 1,
    tick_hooks: Sequence[ProgressHook] = (),
    launcher: WorkerLauncher | None = None,
) -> RunResult:
    """Start the target, run the scenarios (and companions) against it with the crash-safe
    stream in ``run_dir``, stop the target. ``on_finished`` is called once the run is over,
    before the stream is closed (the CLI defers signals from there). ``workers`` > 1 runs
    the scenarios in that many processes, merged here (:mod:`simulator.run.workers`);
    ``launcher`` starts them elsewhere (a Ray cluster, :mod:`simulator.run.cluster`), even one.
    ``tick_hooks`` are called after each tick's timeline point (live outputs)."""
    from simulator.report.output import RunStream
    from simulator.run.device_parts import sweep_stale
    from simulator.run.limits import ensure_open_files, files_needed
    from simulator.run.runner import load_all_accounts

    pool: WorkerPool | None = None
    signals = RunSignals()
    try:
        made = [c for c in (make(cfg) for make in companions) if c is not None]
        # before anything starts (cluster workers hold their connections on their nodes)
        scenarios = files_needed(cfg, workers) if launcher is None else 0
        ensure_open_files(scenarios + sum(c.open_files() for c in made))
        accounts = load_all_accounts(cfg, target.prepare(cfg))  # a bad file fails first
        sweep_stale()  # killed runs' scratch folders (device_parts), whichever run comes next
        if workers > 1 and launcher is None:  # local workers start while the target starts
            from simulator.run.workers import WorkerPool

            pool = WorkerPool(cfg, "", accounts, workers, points=points, parts_dir=run_dir)
            pool.start_early()
        tgt = target.start()
        # The embedded server's URL (its port) and a custom provider's are known only now: at
        # load a {url:...} filter was only held to end in a requested path. One that can never
        # match the real URL is refused here (104), before any load; the target is stopped below
        check_url_filters(cfg, tgt.url)
        effective["target"] = tgt.url
        stream = RunStream(run_dir, effective)
        result = _execute(
            cfg,
            tgt,
            accounts,
            stream,
            points,
            made,
            quiet,
            no_color,
            workers,
            tick_hooks,
            launcher,
            pool,
            signals=signals,
        )
        if on_finished is not None:
            on_finished()
        stream.close(result)
        # one after the result was made (devices.csv's parts merged) cut nothing but came
        # (counted since the loop closed): exit 105, as for one while results are written
        result.signalled = signals.count > 0
        result.timeline = stream.timeline()  # kept on disk during the run, not in memory
        return result
    finally:
        signals.restore()
        if pool is not None:
            pool.abandon()
        target.stop()
        if points is not None:
            points.close()


def _execute(
    cfg: RunConfig,
    target: Target,
    accounts: dict[str, list[Account]],
    stream: RunStream | None,
    points: PointWriter | None,
    companions: list[Companion],
    quiet: bool,
    no_color: bool,
    workers: int = 1,
    tick_hooks: Sequence[ProgressHook] = (),
    launcher: WorkerLauncher | None = None,
    early: WorkerPool | None = None,
    *,
    signals: RunSignals,
) -> RunResult:
    from simulator.executors.runtime import new_loop, one_process_quantum, tuned_gc
    from simulator.http import make_transport
    from simulator.run import monitoring
    from simulator.run.devices import warm_connections
    from simulator.run.progress import make_progress
    from simulator.run.runner import Environment, build_bank

    url = target.url
    remote = workers > 1 or launcher is not None
    bank = None if remote else build_bank(cfg)  # workers build their own
    quantum = 0.0 if remote else one_process_quantum()  # 0 but in a bench's share run
    progress = None if quiet else make_progress(cfg, no_color=no_color)

    presses = 0  # Ctrl-C/SIGTERM taken by the run's loop

    async def main() -> RunResult:
        # the coordinator of workers runs no scenario: nothing to open ahead
        warm = 0 if remote else warm_connections(cfg)
        transport = make_transport(url, cfg.target.timeout, cfg.target.transport, warm)
        env = Environment(
            cfg, transport, bank=bank, accounts=accounts, progress=progress, target=url
        )
        env.warm_asked = warm
        env.registry.sink = points
        monitoring.attach(env, cfg, target.pid)
        env.companions.extend(companions)
        if remote:
            from simulator.run.workers import WorkerPool

            pool = early or WorkerPool(
                cfg,
                url,
                accounts,
                workers,
                tick=env.tick,
                launcher=launcher,
                points=points,
                parts_dir=stream.path.parent if stream is not None else None,
            )
            pool.url = url  # workers started early get it with the go
            env.remote = pool
            env.companions.insert(0, pool)
        else:
            env.arrival_quantum = quantum
        if stream is not None:
            env.tick_hooks.append(stream.tick)
            env.keep_timeline = False  # the stream has every point; memory keeps the last
        env.tick_hooks.extend(tick_hooks)
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()

        def on_sigint() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                sys.stderr.write("\nscfleet: stopping (Ctrl-C again to cancel in-flight)\n")
                env.request_stop()
            elif presses == 2:
                env.cancel_inflight()  # the clean-up still runs and results are written
            elif main_task is not None:
                main_task.cancel()  # a third press: give up on the clean-up too

        signals.attach(loop, on_sigint)
        try:
            return await env.run()
        finally:
            await transport.close()
            if progress is not None:
                progress.close()

    signals.install()
    try:
        with tuned_gc(), asyncio.Runner(loop_factory=new_loop) as runner:
            result = runner.run(main())
        if os.environ.get(TERM_AFTER_LOOP_ENV) == "1":
            os.kill(os.getpid(), signal.SIGTERM)
        return result
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None  # third Ctrl-C: "scfleet: interrupted", exit 105
