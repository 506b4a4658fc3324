"""The pytest plugin (entry point ``pytest11``: ``scfleet``): gate a server in CI with a fleet run.

Fixtures, in pytest-embedded's style (each command-line option is also a fixture that a test can
override with ``@pytest.mark.parametrize(..., indirect=True)``):

``fleet``
    ``fleet.run("configs/smoke.toml", target=..., time_scale=..., overrides=[...],
    boards=...)`` runs a scenario through :mod:`scfleet.api` into a fresh run folder under the
    test's ``tmp_path`` and returns a :class:`FleetRun` (``.result``, ``.run_dir``,
    ``.summary``, ``.metric(key)``, ``.assert_ok()``).
``scfleet_server``
    The embedded reference server (``python -m reference_server`` on 127.0.0.1), started for
    the test and stopped after it; ``scfleet_server.url``, ``scfleet_server.data_dir``.
``emulated_boards``
    ``emulated_boards(4)``: four emulated ESP32 boards (the firmware app under CPython) to pass
    as ``fleet.run(..., boards=...)``; the scenario file needs no ``[boards]`` table.
``scfleet_target`` / ``scfleet_time_scale``
    ``--scfleet-target URL`` (default: the embedded server of each run) and
    ``--scfleet-time-scale F`` (default 1), the defaults of ``fleet.run``.

:func:`assert_run_ok` (also ``FleetRun.assert_ok()``) fails the test with the failed thresholds
and the stage table, not with a bare ``assert False``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from scfleet.api import RunOutcome
    from scfleet.embedded import EmbeddedServer
    from simulator.run.runner import RunResult


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scfleet", "SignalCraft Fleet load runs (scfleet)")
    group.addoption(
        "--scfleet-target",
        default=None,
        metavar="URL",
        help="server the fleet fixture loads (default: an embedded reference server per run)",
    )
    group.addoption(
        "--scfleet-time-scale",
        type=float,
        default=None,
        metavar="F",
        help="default time scale of fleet.run (0.1: a 20 s scenario runs 2 s)",
    )


def _option(request: pytest.FixtureRequest, name: str) -> Any:
    """An indirect parameter if the test gave one, else the command-line option."""
    if hasattr(request, "param"):
        return request.param
    # default=None: the plugin may be registered after the command line was parsed
    return request.config.getoption(name, default=None)


@pytest.fixture
def scfleet_target(request: pytest.FixtureRequest) -> str | None:
    """The default target of ``fleet.run`` (``--scfleet-target``); None: embedded server."""
    value = _option(request, "scfleet_target")
    return None if value is None else str(value)


@pytest.fixture
def scfleet_time_scale(request: pytest.FixtureRequest) -> float:
    """The default time scale of ``fleet.run`` (``--scfleet-time-scale``, default 1)."""
    value = _option(request, "scfleet_time_scale")
    return 1.0 if value is None else float(value)


@pytest.fixture
def scfleet_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """The embedded reference server for this test, on 127.0.0.1; stopped (and reaped) after."""
    from scfleet.embedded import EmbeddedServer
    from simulator.config import EmbeddedServerConfig

    server = EmbeddedServer(tmp_path / "scfleet-server", EmbeddedServerConfig())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class EmulatedBoards:
    """Boards running the firmware app under CPython, joining a run as ``kind=physical``.

    ``scenario``: the iot_upload scenario they follow ("" = the first); ``rate``: uploads/s per
    board (None: that scenario's share per device); ``wifi_ssid``: what they are told to join.
    """

    count: int
    scenario: str = ""
    rate: float | None = None
    wifi_ssid: str = "lab"

    def overrides(self) -> list[str]:
        """The ``--set`` assignments that put these boards in a run."""
        out = [f'boards.ports=["emulated:{self.count}"]', f"boards.wifi_ssid={self.wifi_ssid!r}"]
        if self.scenario:
            out.append(f"boards.scenario={self.scenario!r}")
        if self.rate is not None:
            out.append(f"boards.rate={self.rate!r}")
        return out


@pytest.fixture
def emulated_boards() -> Callable[..., EmulatedBoards]:
    """``emulated_boards(4)``, ``emulated_boards(2, scenario="up", rate=1)``: for ``fleet.run``."""

    def make(
        count: int, *, scenario: str = "", rate: float | None = None, wifi_ssid: str = "lab"
    ) -> EmulatedBoards:
        if not 1 <= count <= 64:
            raise ValueError(f"emulated_boards: expected 1..64 boards, got {count}")
        return EmulatedBoards(count, scenario, rate, wifi_ssid)

    return make


@dataclass(frozen=True)
class FleetRun:
    """One finished run: the in-memory result and the run folder it wrote."""

    outcome: RunOutcome

    @property
    def result(self) -> RunResult:
        return self.outcome.result

    @property
    def run_dir(self) -> Path:
        return self.outcome.run_dir

    @property
    def files(self) -> Mapping[str, Path]:
        return self.outcome.files

    @property
    def exit_code(self) -> int:
        """What ``scfleet run`` would have exited with for this run (0, 99 thresholds, 103 engine,
        105 interrupted). A config ``scfleet run`` refuses (104, 107) never makes a run here:
        ``fleet.run`` raises its ConfigError (a ScriptError for device code that fails to load)."""
        return self.outcome.exit_code

    @cached_property
    def summary(self) -> dict[str, Any]:
        """``summary.json`` (k6's --summary-export shape plus the ``scfleet`` section), read as
        ``scfleet report`` reads it: a ConfigError naming it when it is not one this scfleet
        reads (a format it does not know, too large)."""
        from simulator.report.model import read_summary

        return read_summary(self.run_dir / "summary.json")

    def metric(self, key: str) -> dict[str, Any]:
        """One metric's figures by k6 key, sub-metrics included: ``"http_reqs{kind:physical}"``."""
        from simulator.report.summary import figures

        return figures(self.summary, key)

    @property
    def summary_text(self) -> str:
        path = self.run_dir / "summary.txt"
        return path.read_text() if path.exists() else ""

    def assert_ok(self) -> None:
        assert_run_ok(self)


def failure_report(run: FleetRun) -> str:
    """Why a run is not a pass: its error, the failed thresholds, then the stage table."""
    from simulator.report import stages

    r = run.result
    lines = [f"scfleet run {run.run_dir} ended with exit code {run.exit_code}"]
    if r.error:
        lines.append(f"  error: {r.error}")
    if r.interrupted:
        lines.append("  interrupted" + (f" (aborted by {r.aborted})" if r.aborted else ""))
    failed = [t for t in r.thresholds if not t.ok]
    if failed:
        lines.append("  failed thresholds:")
        for t in failed:
            seen = "no data" if t.observed is None else f"{t.observed:.6g}"
            note = f" ({t.note})" if t.note else ""
            lines.append(f"    {t.threshold.name}, got {seen}{note}")
    folder = run.outcome.folder
    if folder is not None and folder.rows:
        lines.append(stages.render_text(folder.rows, folder.assessments).rstrip())
    return "\n".join(lines)


def assert_run_ok(run: FleetRun) -> None:
    """Fail the test (without a traceback into the plugin) unless the run passed: no error,
    not interrupted, every threshold held. The message lists the failed thresholds and the
    stage table."""
    if run.exit_code != 0:
        pytest.fail(failure_report(run), pytrace=False)


class Fleet:
    """The ``fleet`` fixture: runs scenarios into run folders under the test's tmp_path."""

    def __init__(self, base: Path, root: Path, target: str | None, time_scale: float) -> None:
        self._base = base
        self._root = root
        self._target = target
        self._time_scale = time_scale
        self.runs: list[FleetRun] = []

    def _path(self, config: str | os.PathLike[str]) -> Path:
        path = Path(config)
        if path.is_absolute() or path.exists():
            return path
        return self._root / path  # "configs/smoke.toml" from any working directory

    def run(
        self,
        config: str | os.PathLike[str],
        *,
        target: str | EmbeddedServer | None = None,
        time_scale: float | None = None,
        overrides: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        boards: EmulatedBoards | None = None,
        out: str | os.PathLike[str] | None = None,
        no_thresholds: bool = False,
    ) -> FleetRun:
        """Load and run a scenario file, as ``scfleet run CONFIG --quiet`` does.

        ``target``: a URL or a running server with ``.url`` (e.g. ``scfleet_server``); None:
        ``--scfleet-target``, else the embedded server of this run (its data in
        ``run_dir/server``). ``overrides`` are ``--set`` assignments. ``no_thresholds`` is
        ``--no-thresholds``: no threshold judged, so ``assert_ok`` holds the run only to its
        error and interruption. A bad config raises
        :class:`scfleet_core.errors.ConfigError` naming the file and key.
        """
        from scfleet import api

        url = (target if isinstance(target, str) else target.url if target else None) or (
            self._target
        )
        scale = self._time_scale if time_scale is None else time_scale
        sets = [*overrides, *(boards.overrides() if boards is not None else ())]
        cfg = api.load(
            self._path(config),
            overrides=sets,
            time_scale=scale,
            target=url,
            env=env,
            no_thresholds=no_thresholds,
        )
        run_dir = Path(out) if out is not None else self._base / f"run-{len(self.runs) + 1}"
        outcome = api.run(cfg, target=url, out=run_dir)
        done = FleetRun(outcome)
        self.runs.append(done)
        return done


@pytest.fixture
def fleet(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    scfleet_target: str | None,
    scfleet_time_scale: float,
) -> Fleet:
    """Run scenario files against a server: ``fleet.run("configs/smoke.toml", time_scale=0.25)``."""
    return Fleet(
        tmp_path / "scfleet-runs", request.config.rootpath, scfleet_target, scfleet_time_scale
    )
