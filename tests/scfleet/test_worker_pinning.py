"""Issue 12 (auto's CPU per request): two unpinned local workers migrated between the cores
~110-190 times a second (15 once pinned). ``SCFLEET_PIN_WORKERS=1`` pins each local worker to
a CPU of its own when there are as many workers as CPUs this process may use; the coordinator
is never pinned, and without the variable the OS places every process as before."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from scfleet import api
from scfleet_core.errors import EXIT_OK, ConfigError
from simulator.config import RunConfig
from simulator.run.devices import Account
from simulator.run.workers import PIN_ENV, pinned_cpus
from simulator.session import GivenTarget, Target

SCENARIO = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 20
duration = "1s"
pre_allocated_devices = 4
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 320
[audio]
profiles = 1
seconds = 1
"""


def test_each_worker_gets_its_own_cpu_only_when_asked_and_as_many_as_the_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5})
    monkeypatch.delenv(PIN_ENV, raising=False)
    assert pinned_cpus(2) == [None, None]  # not asked: the OS places them, as before
    monkeypatch.setenv(PIN_ENV, "0")
    assert pinned_cpus(2) == [None, None]
    monkeypatch.setenv(PIN_ENV, "1")
    assert pinned_cpus(2) == [3, 5]
    assert pinned_cpus(3) == [None] * 3  # more workers than CPUs: two would share one
    assert pinned_cpus(1) == [None]  # fewer: the OS balances them over the CPUs
    monkeypatch.setenv(PIN_ENV, "yes")
    with pytest.raises(ConfigError, match=f"^{PIN_ENV}: expected 0 or 1, got 'yes'$"):
        pinned_cpus(2)


class AffinityTarget:
    """A URL target that, when the run starts it, waits (bounded) until the workers started
    early have got as far as their first step, and notes each one's CPUs."""

    def __init__(self, url: str, settled: Callable[[set[int]], bool]) -> None:
        self.inner = GivenTarget(url)
        self.settled = settled
        self.cpus: dict[str, set[int]] = {}

    def prepare(self, cfg: RunConfig) -> Mapping[str, list[Account]]:
        return self.inner.prepare(cfg)

    def start(self) -> Target:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kids = [p for p in multiprocessing.active_children() if p.name.startswith("scfleet")]
            self.cpus = {p.name: os.sched_getaffinity(p.pid) for p in kids if p.pid}
            if len(self.cpus) == 2 and all(self.settled(c) for c in self.cpus.values()):
                break
            time.sleep(0.05)
        return self.inner.start()

    def stop(self) -> None:
        self.inner.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
@pytest.mark.parametrize("asked", [True, False], ids=["pinned", "not-asked"])
def test_two_local_workers_on_two_cpus_each_run_on_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_sink: Callable[..., str], asked: bool
) -> None:
    mine = os.sched_getaffinity(0)
    two = set(sorted(mine)[:2])
    os.sched_setaffinity(0, two)  # this process (the coordinator) may use two CPUs: auto = 2
    try:
        if asked:
            monkeypatch.setenv(PIN_ENV, "1")
        else:
            monkeypatch.delenv(PIN_ENV, raising=False)
        path = tmp_path / "up.toml"
        path.write_text(SCENARIO)
        # not asked: wait a moment for a pin that must not come (the workers' start-up)
        since = time.monotonic()
        target = AffinityTarget(
            http_sink(),
            (lambda c: len(c) == 1) if asked else (lambda c: time.monotonic() - since > 3),
        )
        outcome = api.run(api.load(path), target=target, out=tmp_path / "run", workers="auto")
        assert outcome.exit_code == EXIT_OK, outcome.result.error
        assert os.sched_getaffinity(0) == two  # the coordinator is never pinned
    finally:
        os.sched_setaffinity(0, mine)
    a, b = sorted(two)
    expected = (
        {"scfleet-worker-1": {a}, "scfleet-worker-2": {b}}
        if asked
        else {"scfleet-worker-1": two, "scfleet-worker-2": two}
    )
    assert target.cpus == expected
    summary = json.loads(outcome.files["summary.json"].read_text())
    m = summary["metrics"]
    # Each of the 20 arrivals is started (one request) or dropped, none lost. Not "20 requests":
    # a worker whose loop reaches its arrivals more than MAX_LATE (END_LATE at the end) late
    # drops them by design (simulator/executors/arrival.py), and a worker pinned to one CPU that
    # other processes hold is that late on a loaded machine (full suite here: 17 == 20; 5
    # started and 15 dropped alone under eight busy loops).
    assert m["http_reqs"]["count"] + m.get("dropped_iterations", {}).get("count", 0) == 20, m
    assert m["iterations"]["count"] == m["http_reqs"]["count"] >= 1, m
