"""Local workers start while the target starts (issue 12): the embedded server's start is no
longer added to every run's; the workers learn the URL with the go."""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import os
import signal
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import psutil
import pytest

from scfleet import api
from scfleet.embedded import EmbeddedTarget
from scfleet_core.errors import EXIT_OK, TargetError
from simulator.config import RunConfig
from simulator.run.devices import Account
from simulator.session import Target

pytestmark = pytest.mark.slow

# per-vu-iterations (a closed model): its 40 uploads are all sent however slowly a loaded
# machine answers. At 20/s for 2 s (constant-arrival-rate, 4 devices) uploads were dropped
# as k6 drops them, every device busy or the last arrivals reached late: 'assert 33 == 40'.
SCENARIO = """
[scenarios.up]
executor = "per-vu-iterations"
vus = 4
iterations = 10
max_duration = "30s"
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 3200
"""


def workers_alive() -> list[str]:
    return sorted(
        p.name for p in multiprocessing.active_children() if p.name.startswith("scfleet-worker-")
    )


class WatchedTarget:
    """The embedded server, noting which worker processes exist when its start begins."""

    def __init__(self, data_dir: Path, fail: BaseException | None = None) -> None:
        self.inner = EmbeddedTarget(data_dir)
        self.fail = fail
        self.at_start: list[str] | None = None

    def prepare(self, cfg: RunConfig) -> Mapping[str, list[Account]]:
        return self.inner.prepare(cfg)

    def start(self) -> Target:
        self.at_start = workers_alive()
        if self.fail is not None:
            raise self.fail
        return self.inner.start()

    def stop(self) -> None:
        self.inner.stop()


def _cfg(tmp_path: Path) -> RunConfig:
    path = tmp_path / "up.toml"
    path.write_text(SCENARIO)
    return api.load(path)


def test_workers_are_started_before_the_target_and_get_its_url_with_the_go(
    tmp_path: Path,
) -> None:
    target = WatchedTarget(tmp_path / "run" / "server")
    outcome = api.run(_cfg(tmp_path), target=target, out=tmp_path / "run", workers=2)
    # by mechanism, not by the clock: both workers were running when the target's start began
    # (before: they were spawned only once it had returned its URL)
    assert target.at_start == ["scfleet-worker-1", "scfleet-worker-2"]
    assert outcome.exit_code == EXIT_OK, outcome.result.error
    summary = json.loads(outcome.files["summary.json"].read_text())
    sent = summary["metrics"]["http_reqs"]["count"]
    # 4 VUs x 10: the workers reached the URL the go gave them
    assert sent == 40, summary["metrics"].get("dropped_iterations")
    db = sqlite3.connect(tmp_path / "run" / "server" / "ledger.sqlite")
    rows = db.execute("SELECT device_id, sequence FROM uploads").fetchall()
    assert len(rows) == len(set(rows)) == sent
    assert workers_alive() == []


@pytest.mark.parametrize(
    "fail", [TargetError("cannot reach the target"), KeyboardInterrupt()], ids=["error", "ctrl-c"]
)
def test_workers_started_early_end_when_the_target_never_starts(
    tmp_path: Path, fail: BaseException
) -> None:
    target = WatchedTarget(tmp_path / "run" / "server", fail)
    with pytest.raises(type(fail)):
        api.run(_cfg(tmp_path), target=target, out=tmp_path / "run", workers=2)
    assert target.at_start == ["scfleet-worker-1", "scfleet-worker-2"]
    assert workers_alive() == []  # none left behind
    assert not (tmp_path / "run").exists()  # no empty run folder either


def test_workers_are_born_ignoring_ctrl_c(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the group, workers still importing too
    (now while the server starts): they must be born ignoring SIGINT, the coordinator
    deciding when they stop (before: SIGINT was ignored only once a worker had imported the
    engine, and one hit before that died with a KeyboardInterrupt traceback)."""
    from simulator.run.workers import WorkerPool

    cfg = _cfg(tmp_path)
    pool = WorkerPool(cfg, "", {}, 2, parts_dir=tmp_path)
    before = signal.getsignal(signal.SIGINT)
    pool.start_early()
    try:
        # read at once, long before a worker could reach its own signal() call
        masks = []
        for channel in pool._channels:
            status = Path(f"/proc/{channel.proc.pid}/status").read_text()  # type: ignore[attr-defined]
            # blocked from birth, then ignored once the worker's entry point runs: either way
            # a Ctrl-C never reaches it as a KeyboardInterrupt
            masks.append(
                int(status.split("SigIgn:")[1].split()[0], 16)
                | int(status.split("SigBlk:")[1].split()[0], 16)
            )
    finally:
        pool.abandon()
    assert all(mask & (1 << (signal.SIGINT - 1)) for mask in masks), [hex(m) for m in masks]
    assert signal.getsignal(signal.SIGINT) is before  # this process's handler is back
    assert workers_alive() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_workers_spawn_waits_until_each_has_its_job(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sig: signal.Signals,
) -> None:
    """The signal comes between a worker's fork and the write of its job (CI saw it as
    SIGTERM in the spawn phase). Before: the CLI's handler raised inside ``Process.start``
    and the worker, reading an empty pipe, printed ``EOFError: Ran out of input`` with a
    traceback (SIGTERM); a SIGINT was ignored while spawning, so lost. Now both are held
    until every worker has its job, then acted on: the interrupt, no worker left behind,
    nothing printed by them."""
    import multiprocessing.util as mp_util

    from simulator.run.workers import WorkerPool

    born: list[int] = []
    real = mp_util.spawnv_passfds

    def spawn_then_signal(path: bytes, args: list[str], passfds: list[int]) -> int:
        pid = real(path, args, passfds)
        if "--multiprocessing-fork" not in args:  # the resource tracker, not a worker
            return pid
        born.append(pid)
        if len(born) == 1:
            os.kill(os.getpid(), sig)  # the job is not written yet
        return pid

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # as the CLI's handler does

    monkeypatch.setattr(mp_util, "spawnv_passfds", spawn_then_signal)
    pool = WorkerPool(_cfg(tmp_path), "", {}, 2, parts_dir=tmp_path)
    old = signal.signal(sig, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            pool.start_early()
        assert signal.getsignal(sig) is interrupt  # the handler found is back
    finally:
        signal.signal(sig, old)
        pool.abandon()
    gc.collect()  # an interrupted start's pipe closes with its Popen: the worker reads EOF
    procs = []
    for pid in born:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    _gone, alive = psutil.wait_procs(procs, timeout=30)
    for proc in alive:
        proc.kill()
    assert not alive, "a worker outlived the interrupted spawn"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "EOFError" not in err, err
    assert len(born) == 2  # the signal waited for both workers' jobs
    assert workers_alive() == []


def test_spawning_leaves_the_signal_mask_it_found() -> None:
    """A caller that blocks SIGINT itself keeps it blocked after the workers are spawned
    (before: ``signals_held`` unblocked SIGINT on the way out, whatever the mask had been)."""
    from simulator.run.workers import signals_held

    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with signals_held():
            pass
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        with signals_held():
            pass
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
