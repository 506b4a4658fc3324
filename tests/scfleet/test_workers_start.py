"""Local workers start while the target starts (issue 12): the embedded server's start is no
longer added to every run's; the workers learn the URL with the go."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pytest

from scfleet import api
from scfleet.embedded import EmbeddedTarget
from scfleet_core.errors import EXIT_OK, TargetError
from simulator.config import RunConfig
from simulator.run.devices import Account
from simulator.session import Target

pytestmark = pytest.mark.slow

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "2s"
pre_allocated_devices = 4
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
    assert sent == 40  # 20/s for 2 s: the workers reached the URL the go gave them
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
    import signal

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
            masks.append(int(status.split("SigIgn:")[1].split()[0], 16))
    finally:
        pool.abandon()
    assert all(mask & (1 << (signal.SIGINT - 1)) for mask in masks), [hex(m) for m in masks]
    assert signal.getsignal(signal.SIGINT) is before  # this process's handler is back
    assert workers_alive() == []
