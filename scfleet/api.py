"""The library API: ``scfleet run`` as two functions, for scripts, notebooks and test suites.

>>> from scfleet import api
>>> cfg = api.load("configs/smoke.toml", overrides=["scenarios.iot_upload.max_devices=80"])
>>> outcome = api.run(cfg, out="runs/smoke")          # the embedded server; or target=URL
>>> outcome.result.thresholds_ok, outcome.exit_code, outcome.folder.summary

This is the path ``scfleet run`` takes (the CLI parses flags, then calls :func:`load` and
:func:`run`), so a run started here writes the same run folder and ends with the same exit code.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scfleet_core.errors import (
    EXIT_ENGINE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_THRESHOLDS_FAILED,
)

if TYPE_CHECKING:
    from simulator.config import RunConfig
    from simulator.config.quickflags import QuickFlags
    from simulator.report.model import RunData
    from simulator.report.streams import PointWriter, Stream
    from simulator.run.prometheus import Endpoint
    from simulator.run.runner import Companion, RunResult
    from simulator.session import TargetProvider


def load(
    path: str | os.PathLike[str],
    *,
    overrides: Sequence[str] = (),
    time_scale: float = 1.0,
    target: str | None = None,
    env: Mapping[str, str] | None = None,
    quick: QuickFlags | None = None,
    no_thresholds: bool = False,
) -> RunConfig:
    """Read and check a scenario file as ``scfleet run`` does.

    ``overrides`` are ``--set`` assignments (``"scenarios.x.rate=100"``), ``time_scale`` is
    ``--time-scale``, ``target`` is ``--target`` (None: the embedded server), ``env`` is what
    ``${VAR}`` reads (default: the process environment), ``quick`` holds k6's quick flags.
    ``no_thresholds`` is ``--no-thresholds``: no threshold is refused (as k6 1.1 parses none
    then) and the config runs without any (``RunConfig.no_thresholds``).
    A bad file raises :class:`scfleet_core.errors.ConfigError` naming the file and key.
    """
    from simulator.config import load_config, validate_url

    url = validate_url(target, key="--target") if target else None
    cfg = load_config(
        str(path),
        list(overrides),
        time_scale,
        url,
        env=env,
        quick=quick,
        no_thresholds=no_thresholds,
    )
    _boards(cfg)  # [boards] is checked now: a bad key fails before any target is contacted
    return cfg


@dataclass(frozen=True)
class RunOutcome:
    """What a run left: the in-memory result, its run folder, the files written there and the
    run-folder model they were written from (summary, timeline, config, the stage table)."""

    result: RunResult
    run_dir: Path
    files: Mapping[str, Path] = field(default_factory=dict)  # e.g. files["summary.json"]
    folder: RunData | None = None  # None only when the report could not be built
    #: ``linger``: the live outputs still serving the final values (``close_live`` ends them)
    live: tuple[Any, ...] = ()
    #: why the run folder asked for could not be written (``PATH: reason``; disk full, the
    #: folder gone): the results are then in ``run_dir``, a new folder in the temp dir, or,
    #: with no ``files``, nowhere but in memory
    unwritten: str | None = None

    def close_live(self) -> None:
        """Close what ``linger`` kept open (``--out prometheus=``); a no-op otherwise."""
        _close_live(self.live)

    @property
    def exit_code(self) -> int:
        """The code ``scfleet run`` exits with for this result (``scfleet_core.errors``)."""
        if self.result.error or (self.unwritten and self._run_code() == EXIT_OK):
            return EXIT_ENGINE
        return self._run_code()

    def _run_code(self) -> int:
        if (self.result.interrupted or self.result.signalled) and not self.result.aborted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.result.thresholds_ok else EXIT_THRESHOLDS_FAILED


def run(
    cfg: RunConfig,
    *,
    target: str | TargetProvider | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    server_pid: int | None = None,
    streams: Sequence[Stream] = (),
    prometheus: Endpoint | None = None,
    dashboard: Endpoint | None = None,
    quiet: bool = True,
    no_color: bool = False,
    effective: Mapping[str, Any] | None = None,
    on_finished: Callable[[], None] | None = None,
    workers: int | str | None = None,
    linger: bool = False,
    cluster: str | None = None,
    no_thresholds: bool = False,
) -> RunOutcome:
    """Run a loaded scenario and write its run folder.

    ``target``: a URL, any :class:`simulator.session.TargetProvider`, or None for the URL in
    the config and, failing that, the embedded reference server (its data in ``out/server``).
    The started target's URL has the ``{url:...}`` threshold filters checked against it (a
    ConfigError before any load, as ``load`` checks the config's; the session's one check).
    ``out``: the run folder (default ``runs/<time>-<config>``; an existing run there is an
    error unless ``overwrite``). ``server_pid``: a process to sample as the server (a URL
    target). ``streams``: k6-format per-sample files (``--out json=``/``csv=``).
    ``prometheus``: serve the live metrics there (``--out prometheus=``, bound before the run
    starts; the run's final values once it is over; closed when the run folder is written, or
    with ``linger`` by the outcome's ``close_live()``, as k6's ``--linger`` keeps its server).
    ``dashboard``: serve the live page there (``--dashboard``, bound the same way; closed with
    the run). ``quiet``:
    no live progress and no start-up line. ``effective``: extra keys for ``config.json``
    (the CLI records the flags). ``on_finished``: called once the run is over, before the
    folder is written. ``workers``: processes running the scenarios (a number or "auto": one
    per core; None: ``[run] workers`` of the config, default "auto"; 1: this process only);
    their per-second results are merged into one run folder (simulator.run.workers).
    ``cluster``: run the workers as Ray actors on that cluster ("auto", "ray://HOST:PORT",
    "HOST:PORT"; None: ``[run] cluster``, else this machine), where "auto" workers are one
    per cluster CPU (simulator.run.cluster).
    ``no_thresholds``: k6's ``--no-thresholds`` — no threshold is judged, so none fails the
    run (exit 0 where it would be 99) or aborts it (``abort_on_fail``), and the summary has
    none; the stage table judges its stages by its defaults, as for a file without
    ``[thresholds]``. A config loaded with ``load(..., no_thresholds=True)`` runs so anyway.
    """
    from simulator.config import validate_url
    from simulator.report.output import claim_run_dir, default_run_dir

    if no_thresholds and not cfg.no_thresholds:
        cfg = replace(cfg, no_thresholds=True)

    if isinstance(target, str):
        target = validate_url(target, key="target")
    address = _cluster_address(cfg, cluster)
    if address is not None and streams:
        from scfleet_core.errors import ConfigError

        raise ConfigError(
            "per-sample streams (--out json=/csv=) need every sample on this machine; drop "
            "them or run without a cluster",
            source="--cluster",
        )
    parts = resolve_workers(cfg.run.workers if workers is None else workers, cfg)

    run_dir = (
        Path(out) if out is not None else default_run_dir(cfg.source, cfg.output.out_dir or "runs")
    )
    live = _open_live(prometheus, dashboard, cfg.source, quiet)  # a port in use fails here
    try:
        created = claim_run_dir(
            run_dir, overwrite=overwrite, key="--out" if out is not None else "output.out_dir"
        )
    except BaseException:
        _close_live(live)
        raise
    kept: tuple[Any, ...] = ()
    try:
        outcome = _run_claimed(
            cfg,
            target,
            run_dir,
            created,
            streams,
            live,
            server_pid,
            effective,
            quiet,
            no_color,
            on_finished,
            parts,
            address,
            cfg.run.workers if workers is None else workers,
        )
        if linger:
            from simulator.run.prometheus import PrometheusOut

            kept = tuple(out for out in live if isinstance(out, PrometheusOut))
            outcome = replace(outcome, live=kept)
        return outcome
    finally:
        _close_live([out for out in live if out not in kept])


def _open_live(
    prometheus: Endpoint | None, dashboard: Endpoint | None, title: str, quiet: bool
) -> list[Any]:
    """The live outputs (``--out prometheus=``, ``--dashboard``), each bound now: a port in
    use is a one-line error before the run folder is claimed or the target contacted."""
    live: list[Any] = []
    try:
        if prometheus is not None:
            from simulator.run.prometheus import PrometheusOut

            live.append(PrometheusOut(prometheus))
        if dashboard is not None:
            from simulator.report.dashboard import Dashboard

            board = Dashboard(dashboard, title)
            live.append(board)
            if not quiet:
                import sys

                sys.stderr.write(f"scfleet: live dashboard on {board.url}\n")
    except BaseException:
        _close_live(live)
        raise
    return live


def _close_live(live: Sequence[Any]) -> None:
    for out in live:
        out.close()


def _run_claimed(
    cfg: RunConfig,
    target: TargetProvider | str | None,
    run_dir: Path,
    created: bool,
    streams: Sequence[Stream],
    live: Sequence[Any],
    server_pid: int | None,
    effective: Mapping[str, Any] | None,
    quiet: bool,
    no_color: bool,
    on_finished: Callable[[], None] | None,
    parts: int,
    address: str | None = None,
    requested: int | str = 1,
) -> RunOutcome:
    from simulator.report.output import write_run_model
    from simulator.session import GivenTarget, run_session

    points = _open_streams(cfg, streams)
    record: dict[str, Any] = {"source": cfg.source, **(effective or {}), "config": dict(cfg.raw)}
    if cfg.no_thresholds:  # scfleet report re-parses the config so (its thresholds unjudged)
        record["no_thresholds"] = True
    url = target if isinstance(target, str) else cfg.target.url
    provider: TargetProvider
    if target is not None and not isinstance(target, str):
        provider = target
    elif url is not None:
        provider = GivenTarget(url, server_pid)
    else:
        from scfleet.embedded import EmbeddedTarget

        provider = EmbeddedTarget(run_dir / "server", announce=not quiet)
    result = None
    cluster = None
    try:
        if address is not None:  # the workers go to a Ray cluster: connect now, in this thread
            from simulator.run.cluster import RayCluster

            cluster = RayCluster(address, announce=not quiet)
            cluster.connect()
            if requested == "auto":  # one per cluster CPU, at most one per device in use
                from simulator.executors import device_plan

                parts = max(min(cluster.cpus(), device_plan(cfg.scenarios).possible), 1)
        record["workers"] = parts  # processes that ran the scenarios (1: this one)
        result = run_session(
            cfg,
            provider,
            run_dir,
            record,
            companions=(_boards,),
            points=points,
            quiet=quiet,
            no_color=no_color,
            on_finished=on_finished,
            workers=parts,
            tick_hooks=[out.tick for out in live],
            launcher=cluster,
        )
    finally:
        if cluster is not None:
            cluster.disconnect()
        if result is None and created:  # failed or interrupted before the run: no empty folder
            shutil.rmtree(run_dir, ignore_errors=True)
    if live:
        from simulator.run.prometheus import PrometheusOut

        for out in live:  # a scrape from now on reads the run's final values
            if isinstance(out, PrometheusOut):
                out.final(result.registry)
    if cluster is not None:
        record["cluster"] = cluster.record()
        result.notes.extend(n for n in cluster.notes() if n not in result.notes)
    try:
        files, folder = write_run_model(result, run_dir, record)
    except OSError as exc:
        return _written_elsewhere(result, run_dir, record, exc)
    return RunOutcome(result, run_dir, files, folder)


def _written_elsewhere(
    result: RunResult, run_dir: Path, record: dict[str, Any], exc: OSError
) -> RunOutcome:
    """The run folder could not be written (disk full, the folder removed or made a file):
    the results go to a new folder in the temp dir, or, failing that too, stay in memory
    (the CLI prints the summary from there); ``unwritten`` says why either way. Before, the
    ``OSError`` ended ``scfleet run`` in a traceback with every figure lost."""
    import tempfile

    from simulator.report.output import write_run_model

    reason = "exists and is not a folder" if isinstance(exc, FileExistsError) else exc.strerror
    why = f"{exc.filename or run_dir}: {reason or exc}"
    try:
        elsewhere = Path(tempfile.mkdtemp(prefix=f"scfleet-{run_dir.name}-"))
        try:
            files, folder = write_run_model(result, elsewhere, record)
        except OSError:
            shutil.rmtree(elsewhere, ignore_errors=True)
            raise
    except OSError:
        return RunOutcome(result, run_dir, unwritten=why)
    return RunOutcome(result, elsewhere, files, folder, unwritten=why)


def resolve_workers(workers: int | str, cfg: RunConfig | None = None) -> int:
    """``workers`` as a number of processes: "auto" is one per core this process may use,
    and never more than the devices ``cfg``'s scenarios may use at once (a worker without a
    device would only cost its start)."""
    if workers == "auto":
        from simulator.run.workers import auto_workers

        return auto_workers(cfg)
    return int(workers)


def _cluster_address(cfg: RunConfig, cluster: str | None) -> str | None:
    """The Ray cluster the workers go to: ``cluster`` (``--cluster``), else ``[run] cluster``."""
    if cluster is None:
        return cfg.run.cluster
    from scfleet_core.errors import ConfigError
    from simulator.config.sections import cluster_address

    try:
        return cluster_address(cluster)
    except ValueError as exc:
        raise ConfigError(str(exc), source="--cluster") from None


def _boards(cfg: RunConfig) -> Companion | None:
    """``[boards]``: real and emulated ESP32 boards join the run (hw_bridge.fleet); the
    engine carries the table unread, hw_bridge checks it (a ConfigError naming boards.KEY)."""
    from hw_bridge.boards_section import parse_boards

    boards = parse_boards(cfg)
    if boards is None:
        return None
    from hw_bridge.fleet import BoardFleet

    return BoardFleet(boards, cfg)


def _open_streams(cfg: RunConfig, streams: Sequence[Stream]) -> PointWriter | None:
    """``--out json=FILE`` / ``csv=FILE``: the writer, its files opened now (a bad path fails
    before anything starts)."""
    if not streams:
        return None
    from simulator.metrics import BUILTIN
    from simulator.report.streams import PointWriter

    ths = [(t.metric_key, t.expr.source, t.tags) for t in cfg.thresholds]
    return PointWriter(streams, BUILTIN, ths)
