"""Boards as devices of the fleet: ``[boards]`` in a scenario file (issue 5, mixed runs).

Before the run's clock starts, every board is opened, greeted (``hello``), stopped if it was
still running, provisioned with ``config`` (device ID from the registry, the upload URL, the
followed scenario's sample rate/chunk size/headers, Wi-Fi) and its clock offset is estimated from
five ``ping``s (the one with the smallest round trip wins: ``offset = board_us − (h0 + h1)/2``).
At the common start each board gets ``start`` with ``start_at_us = host_start + offset``.

**A board's share of the schedule.** Boards follow one iot_upload scenario (``[boards]
scenario``, default the first): same start time and duration, and each board uploads at
``[boards] rate`` per second if given, else at that scenario's *mean per-device rate* — the
executor's mean arrival rate over its stages divided by ``pre_allocated_devices`` — i.e. a board
behaves like one more device of that scenario, on top of the virtual ones. For VU executors the
share is ``1 / think_time`` (a looping device's ceiling); without think time ``rate`` is required.
The firmware keeps a constant rate; it does not follow ramps.

Result lines become the same metrics as virtual requests (``http_reqs``, ``http_req_duration``
from the board's ``latency_us``, ``http_req_failed``, ``data_sent``, …) tagged ``kind=physical``;
a request without an answer is status 0. A board that is unplugged, or silent for ``silence``
and then unanswering to ``status`` within ``status_timeout``, is *lost*: ``boards_lost`` counts
it, a note goes in the summary, the run goes on, and the board is probed once a second; when it
answers again it *rejoins* (``boards_rejoined``), restarted for what is left of the schedule if
it had rebooted.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from hw_bridge import ports
from hw_bridge.boardconfig import BoardSettings, read_wifi_key
from hw_bridge.boards_section import BoardsConfig
from hw_bridge.link import BoardLink, BoardReplyError, LinkFactory, SerialLink
from hw_bridge.threads import run_owned
from scfleet_core.errors import ConfigError, HardwareError
from scfleet_core.secrets import Secret
from simulator.config import IotUploadDevice, RunConfig, ScenarioConfig
from simulator.config.device_ids import Finder
from simulator.config.reader import LONG_INTEGER
from simulator.config.sections import sequenced_ranges
from simulator.http import KIND_INDEX, ErrorKind
from simulator.metrics import Counter, RequestRecorder, RequestSample, tags_of
from simulator.run.device_row import DeviceRow
from simulator.run.devices import CONFLICT_STATUS, expected_ok

if TYPE_CHECKING:
    from hw_bridge.emulator.server import EmulatedBoards
    from simulator.run.runner import Environment

PINGS = 5
HELLO_TIMEOUT = 3.0
MAX_GRACE = 5.0
# Bounds of a board's result fields: an hour of latency or lag, a 1 GiB body, 2**53 uploads.
MAX_US = 3_600_000_000
MAX_BYTES = 1 << 30
MAX_SEQ = 1 << 53
#: ``start``'s ``seq`` stays below the firmware's limit (scfw.app.SEQ_LIMIT)
SEQ_LIMIT = 1 << 31
#: a restarted board skips this many sequences more than its rate since its last result: a
#: results batch the host never read (the firmware batches up to 50) and the one in flight
UNHEARD_MARGIN = 64


def now_us() -> int:
    return time.monotonic_ns() // 1000


# --------------------------------------------------------------------------- share and registry


def board_rate(sc: ScenarioConfig, override: float | None, source: str = "") -> float:
    """Uploads/s for one board following ``sc`` (see the module docstring); the executor
    answers for its own mean rate (open model) and pre-allocated devices."""
    if override is not None:
        return override
    mean, devices = sc.executor.mean_rate(), sc.executor.pre_allocated()
    if mean is not None and devices:
        rate = mean / devices
    elif sc.think_time > 0:
        rate = 1.0 / sc.think_time
    else:
        raise ConfigError(
            f"scenario {sc.name!r} has no arrival rate; set boards.rate", source=source, key="rate"
        )
    return min(max(rate, 0.001), 1000.0)


def load_registry(path: Path) -> dict[str, str]:
    """``[[board]] port = "...", device_id = "..."`` entries -> {port: device_id}."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("no such board registry", source=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("cannot read board registry: not UTF-8 text", source=str(path)) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read board registry: {exc}", source=str(path)) from None
    except ValueError:  # an integer past Python's digit limit (not a TOMLDecodeError)
        raise ConfigError(f"board registry: {LONG_INTEGER}", source=str(path)) from None
    entries = data.get("board", [])
    if not isinstance(entries, list):
        raise ConfigError("expected [[board]] tables", source=str(path), key="board")
    out: dict[str, str] = {}
    ids: set[str] = set()
    for i, e in enumerate(entries):
        key = f"board[{i}]"
        if not isinstance(e, Mapping):
            raise ConfigError("expected a table", source=str(path), key=key)
        port, dev = e.get("port"), e.get("device_id")
        if not isinstance(port, str) or not port or not isinstance(dev, str) or not dev:
            raise ConfigError("needs port and device_id strings", source=str(path), key=key)
        if port in out:
            raise ConfigError(f"port {port!r} listed twice", source=str(path), key=key)
        if dev in ids:
            raise ConfigError(f"device_id {dev!r} used twice", source=str(path), key=key)
        unknown = set(e) - {"port", "device_id", "note"}
        if unknown:
            raise ConfigError("unknown key", source=str(path), key=f"{key}.{sorted(unknown)[0]}")
        out[port] = dev
        ids.add(dev)
    return out


def wifi_key(cfg: BoardsConfig, source: str) -> Secret | None:
    return read_wifi_key(
        cfg.wifi_key_env, cfg.wifi_key_file, env_key="boards.wifi_key_env", source=source
    )


_CONFLICT = KIND_INDEX[ErrorKind.SEQUENCE_CONFLICT]


# --------------------------------------------------------------------------- one board


class BoardSample(NamedTuple):
    """One validated result line of a board, as the driver hands it to the fleet (which makes
    the engine's ``RequestSample`` of it)."""

    status: int  # 0: no answer
    failed: bool
    latency_us: int  # the whole wait: request start to full response
    lag_us: int  # start - scheduled time (coordinated omission), >= 0
    nbytes: int  # body bytes sent
    first: bool  # the chunk's first attempt: one iteration


class BoardState(enum.StrEnum):
    """Where a board is in a run (its ``state`` column in ``devices.csv``)."""

    NEW = "new"  # listed, not set up yet
    READY = "ready"  # greeted, provisioned and time-synced: waits for the common start
    RUNNING = "running"  # uploading on the schedule
    FINISHED = "finished"  # its run ended with the schedule
    LOST = "lost"  # unplugged, silent, rebooted or ended early; probed to rejoin
    STOPPED = "stopped"  # the run was stopped (Ctrl-C, SIGTERM) while it ran


class BoardOwner(Protocol):
    """What a :class:`BoardDriver` asks of the fleet it belongs to: its settings, the
    schedule's times (loop time), and where its results and events go. :class:`BoardFleet` is
    one; ``hw_bridge.testing.FakeOwner`` records what a driver hands it, for tests."""

    cfg: BoardsConfig  # baud, silence, status_timeout
    link_factory: LinkFactory
    rate: float  # uploads/s per board
    grace_s: float
    schedule_end: float
    finished_after: float  # a ``done`` before this is a board that died
    watch_until: float
    stopping: bool  # the run is stopping: boards going quiet are not lost

    def board_config(self, d: BoardDriver) -> dict[str, Any]: ...

    def record(self, r: BoardSample) -> None: ...

    def board_lost(self, d: BoardDriver, reason: str) -> None: ...

    def board_dropped(self, d: BoardDriver, count: int) -> None: ...

    def board_rejoined(self, d: BoardDriver) -> None: ...


class BoardDriver:
    """One board during a run: provisioning, start, result ingestion, loss and rejoin."""

    def __init__(self, fleet: BoardOwner, label: str, url: str | None, device_id: str) -> None:
        self.fleet = fleet
        self.label = label
        self.url = url
        self.device_id = device_id
        self.state = BoardState.NEW
        self.link: BoardLink | None = None
        self.offset_us = 0
        self.rtt_us = 0
        self.requests = self.ok = self.failed = self.bytes_ok = 0
        self.next_seq = 0
        self._heard_at = 0.0  # time.monotonic() of its last result
        self.dropped = 0
        self.lost = 0
        self.rejoined = 0
        self.bad_lines = 0
        self.protocol_errors = 0  # result lines with a missing or out-of-range field
        # first attempts answered as duplicates: the server held that sequence before this
        # attempt (a reboot numbers from 0 again; an earlier run's ledger), stored nothing
        self.stale = 0
        # uploads refused 409: the server holds that sequence with other audio (a board whose
        # audio changed, or another sender with its ID) and stored nothing; the board moves on
        self.conflicts = 0
        self._last_try = 0.0
        self.run_id: object = None  # the board's run number, from the start reply
        self.wifi_key_set = False
        self.last_error = ""
        # a boot banner came after its clock was synced, before its start: sync again
        self.resync = False

    # --- link ----------------------------------------------------------------------------
    def _make_link(self, url: str) -> BoardLink:
        return self.fleet.link_factory(
            url,
            baud=self.fleet.cfg.baud,
            on_message=self.on_message,
            on_text=self.on_text,
            on_closed=lambda reason: self.mark_lost(f"port failed ({reason})"),
        )

    async def connect(self) -> None:
        if self.url is None:
            self.url = ports.resolve(self.label)
        if self.link is None:
            self.link = self._make_link(self.url)
        await self.link.open()

    async def setup(self) -> None:
        """Open, greet, stop, provision and time-sync; raises HardwareError on failure."""
        await self.connect()
        link = self.link
        assert link is not None
        last: Exception | None = None
        for _ in range(2):
            try:
                await link.request("hello", HELLO_TIMEOUT)
                break
            except HardwareError as exc:
                last = exc
        else:
            raise HardwareError(f"{self.label}: no hello ({last})")
        await link.request("stop", HELLO_TIMEOUT)
        try:
            reply = await link.request(
                "config", HELLO_TIMEOUT, persist=True, **self.fleet.board_config(self)
            )
        except BoardReplyError as exc:
            raise HardwareError(f"{self.label}: config refused ({exc})") from None
        cfg = reply.get("config")
        self.wifi_key_set = bool(isinstance(cfg, dict) and cfg.get("wifi_key_set"))
        await self.sync()
        self.state = BoardState.READY

    async def sync(self) -> None:
        assert self.link is not None
        best: tuple[int, int] | None = None
        for i in range(PINGS):
            h0 = now_us()
            reply = await self.link.request("ping", HELLO_TIMEOUT, token=i)
            h1 = now_us()
            board_us = reply.get("board_us")
            if not isinstance(board_us, int):
                raise HardwareError(f"{self.label}: ping reply without board_us")
            if best is None or h1 - h0 < best[0]:
                best = (h1 - h0, board_us - (h0 + h1) // 2)
        assert best is not None
        self.rtt_us, self.offset_us = best
        self.resync = False

    async def start(self, host_start_us: int, duration_s: float, *, resume: bool = False) -> None:
        """Start the board's run. ``resume``: a restart after it was lost — it may have
        rebooted and would number its uploads from 0 again, which the server already holds
        and answers as retries (stored once, counted twice), so it is told to go on past every
        sequence it may have sent, reported or not (a gap costs nothing)."""
        assert self.link is not None
        if self.resync:  # rebooted while it waited: its clock began again at 0
            await self.sync()
        fl = self.fleet
        seq = self.next_seq
        now = time.monotonic()
        if resume:
            seq += UNHEARD_MARGIN + math.ceil(fl.rate * (now - self._heard_at + 1.0))
        self._heard_at = now  # its run (re)starts: nothing is unheard yet
        reply = await self.link.request(
            "start",
            HELLO_TIMEOUT,
            rate=fl.rate,
            duration_s=round(duration_s, 6),
            start_at_us=host_start_us + self.offset_us,
            grace_s=fl.grace_s,
            seq=min(seq, SEQ_LIMIT - 1),
        )
        self.run_id = reply.get("run")
        self.state = BoardState.RUNNING

    # --- lines from the board (event loop) ----------------------------------------------
    def on_text(self, text: str) -> None:
        self.bad_lines += 1

    def on_message(self, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "result":
            self.record(msg)
        elif t == "results":
            items = msg.get("items")
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict):
                        self.record(item)
                    else:
                        self.bad_lines += 1
        elif t == "done" and msg.get("run") == self.run_id and self.run_id is not None:
            d = msg.get("dropped")
            if isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_SEQ:
                self.dropped += d
                if d:
                    self.fleet.board_dropped(self, d)
            if self.state != BoardState.RUNNING:
                return
            if asyncio.get_running_loop().time() < self.fleet.finished_after:
                self.mark_lost("its run ended early")  # crashed, reset, or stopped by someone
            else:
                self.state = BoardState.FINISHED
        elif t == "hello" and msg.get("id") is None and self.state == BoardState.RUNNING:
            self.mark_lost("rebooted")  # a boot banner mid-run: rejoin restarts it
        elif t == "hello" and msg.get("id") is None and self.state == BoardState.READY:
            # Before the start: its start_at_us would be reckoned from the offset measured
            # before the boot (an hour's uptime: told to begin an hour later, so it uploaded
            # nothing all run and answered status "running", never lost).
            self.resync = True
        elif t == "error" and msg.get("id") is None:
            self.bad_lines += 1

    def record(self, item: Mapping[str, Any]) -> None:
        """One result, validated here at the edge: a value out of range (a 2**64 byte count,
        1e30, Infinity) is a protocol error of this board and never reaches the recorder."""
        try:
            status = _int(item.get("status"), 0, 999)
            latency = max(_int(item.get("latency_us"), -MAX_US, MAX_US), 0)
            lag = max(_int(item.get("lag_us", 0), -MAX_US, MAX_US), 0)
            nbytes = _int(item.get("bytes", 0), 0, MAX_BYTES)
            seq = _int(item.get("seq", -1), -1, MAX_SEQ)
        except (TypeError, ValueError):
            self.bad_lines += 1
            self.protocol_errors += 1
            return
        failed = status == 0 or not expected_ok(status) or item.get("error") is not None
        self.fleet.record(
            BoardSample(status, failed, latency, lag, nbytes, first=item.get("attempt") == 1)
        )
        self.requests += 1
        if failed:
            self.failed += 1
            if status == CONFLICT_STATUS:
                self.conflicts += 1
        else:
            self.ok += 1
            self.bytes_ok += nbytes
            if item.get("dup") is True and item.get("attempt") == 1:
                self.stale += 1
        self.next_seq = max(self.next_seq, seq + 1)
        self._heard_at = time.monotonic()  # off the loop too (unit tests feed results)

    # --- loss and rejoin -----------------------------------------------------------------------
    def mark_lost(self, reason: str) -> None:
        if self.state in (BoardState.LOST, BoardState.FINISHED, BoardState.STOPPED):
            return
        if self.fleet.stopping:
            # The run is being stopped (Ctrl-C, SIGTERM, abort): the board's run ending now,
            # or its port closing, is the stop itself, not a lost board.
            self.state = BoardState.STOPPED
            return
        self.state = BoardState.LOST
        self.lost += 1
        self.last_error = reason
        self.fleet.board_lost(self, reason)

    async def watch(self) -> None:
        """Until the schedule is over: probe silent boards, try lost ones once a second."""
        fl = self.fleet
        loop = asyncio.get_running_loop()
        while loop.time() < fl.watch_until:
            await asyncio.sleep(0.25)
            if self.state == BoardState.FINISHED:
                return
            if self.state == BoardState.LOST:
                if loop.time() >= fl.schedule_end:
                    return
                if time.monotonic() - self._last_try >= 1.0:
                    self._last_try = time.monotonic()
                    await self.try_rejoin()
                continue
            link = self.link
            if link is None or not link.is_open:
                self.mark_lost(f"port failed ({link.closed_reason if link else 'not open'})")
                continue
            if time.monotonic() - link.last_rx < fl.cfg.silence:
                continue
            try:
                st = await link.request("status", fl.cfg.status_timeout)
            except (HardwareError, BoardReplyError):
                self.mark_lost(
                    f"silent for {fl.cfg.silence:g}s and no answer to status "
                    f"within {fl.cfg.status_timeout:g}s"
                )
                continue
            if self.state == BoardState.RUNNING and not st.get("running"):
                if loop.time() < fl.finished_after:
                    self.mark_lost("rebooted")  # stopped mid-schedule without a done line
                else:
                    self.state = BoardState.FINISHED

    async def try_rejoin(self) -> None:
        fl = self.fleet
        try:
            if self.link is None or not self.link.is_open:
                await self.connect()
            assert self.link is not None
            st = await self.link.request("status", 1.0)
            if st.get("running"):
                self.state = BoardState.RUNNING
            else:
                remaining = fl.schedule_end - asyncio.get_running_loop().time()
                if remaining < 0.5:
                    return
                await self.link.request(
                    "config", HELLO_TIMEOUT, persist=True, **fl.board_config(self)
                )
                await self.sync()
                await self.start(now_us() + 50_000, remaining - 0.05, resume=True)
        except (HardwareError, BoardReplyError, OSError):
            return
        self.rejoined += 1
        fl.board_rejoined(self)

    async def stop(self) -> None:
        if self.link is not None and self.link.is_open and self.state == BoardState.RUNNING:
            with contextlib.suppress(HardwareError, BoardReplyError):
                await self.link.request("stop", 1.0)

    async def close(self) -> None:
        if self.link is not None:
            try:
                await self.link.close()
            finally:
                self.link.shutdown()  # its writer thread, even when the close was cancelled

    def row(self, scenario: str) -> DeviceRow:
        return DeviceRow(
            scenario=scenario,
            kind="physical",
            device_id=self.device_id,
            requests=self.requests,
            ok=self.ok,
            failed=self.failed,
            next_sequence=self.next_seq,
            bytes_ok=self.bytes_ok,
            logins=0,
            board=self.label,
            state=str(self.state),
            lost=self.lost,
            rejoined=self.rejoined,
            dropped_chunks=self.dropped,
            clock_offset_us=self.offset_us,
            ping_rtt_us=self.rtt_us,
            bad_lines=self.bad_lines,
            protocol_errors=self.protocol_errors,
        )


def _int(v: Any, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] from a JSON value; floats must be finite."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError("not a number")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("not finite")
    if not lo <= v <= hi:
        raise ValueError("out of range")
    return int(v)


def _raise_first(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


# --------------------------------------------------------------------------- the fleet


class BoardFleet:
    """The run's boards, as a :class:`simulator.run.runner.Companion`."""

    def __init__(
        self,
        cfg: BoardsConfig,
        run_cfg: RunConfig,
        *,
        link_factory: LinkFactory = SerialLink,
    ) -> None:
        self.cfg = cfg
        self.link_factory = link_factory  # hw_bridge.testing.fake_links() in tests
        self.run_cfg = run_cfg
        sc = next(s for s in run_cfg.scenarios if s.name == cfg.scenario)
        assert isinstance(sc.device, IotUploadDevice)
        self.sc = sc
        self.device: IotUploadDevice = sc.device
        self.rate = board_rate(sc, cfg.rate, run_cfg.source)
        self.duration = sc.executor.total_duration()
        self.grace_s = min(sc.graceful_stop, MAX_GRACE)
        self.upload_url = ""  # the boards' target (or the run's, known in prepare) + endpoint
        self.drivers: list[BoardDriver] = []
        self.emulated: EmulatedBoards | None = None
        self.schedule_end = float("inf")
        self.finished_after = float("inf")
        self.watch_until = float("inf")
        self._env: Environment | None = None
        # read when the file is loaded (api.load builds a fleet to check [boards]): a missing
        # key or a bad registry is a config error before any target is contacted
        self._key: Secret | None = wifi_key(cfg, run_cfg.source)
        self._registry = load_registry(cfg.registry) if cfg.registry else {}
        if "auto" not in cfg.ports:  # every board is named: its ID is checked at load too
            self._board_ids(self._specs(self._registry), {})
        self._watchers: list[asyncio.Task[None]] = []
        self.stopping = False  # the run is stopping: boards going quiet are not lost

    # --- provisioning ------------------------------------------------------------------------
    def board_config(self, d: BoardDriver) -> dict[str, Any]:
        """The ``config`` command's fields for board ``d``: it uploads like a device of the
        followed scenario (sample rate, chunk size, keep-alive, headers, timeout)."""
        dev = self.device
        return BoardSettings(
            device_id=d.device_id,
            target=self.upload_url,
            wifi_ssid=self.cfg.wifi_ssid,
            wifi_key=self._key,
            sample_rate=dev.sample_rate,
            chunk_bytes=dev.chunk_bytes,
            keep_alive=dev.keep_alive,
            headers=dict(dev.headers),
            timeout_s=self.run_cfg.target.timeout,
        ).fields()

    def _specs(self, registry: Mapping[str, str]) -> list[tuple[str, str | None]]:
        """(label, url or None when only a name is known) for every board of the run."""
        out: list[tuple[str, str | None]] = []
        specs = list(self.cfg.ports) or list(registry)
        for spec in specs:
            if spec.startswith("emulated:") and spec in registry and not self.cfg.ports:
                out.append((spec, None))  # registry-only listing: emulated:K is one board
            elif spec.startswith("emulated:"):
                n = int(spec.removeprefix("emulated:"))
                out.extend((f"emulated:{i}", None) for i in range(1, n + 1))
            elif spec == "auto":
                out.extend((b.name, b.device) for b in ports.list_boards())
            elif ports.is_url(spec):
                out.append((spec, spec))
            else:
                out.append((spec, None))
        return out

    def open_files(self) -> int:
        """Two per board listed in ``ports`` (its link, and the far end of an emulated one,
        which runs in this process); boards named only by the registry share the margin."""
        n = [
            int(p.removeprefix("emulated:")) if p.startswith("emulated:") else 1
            for p in self.cfg.ports
        ]
        return 2 * sum(n)

    def _board_ids(
        self, specs: list[tuple[str, str | None]], urls: Mapping[str, str]
    ) -> list[tuple[str, str | None, str]]:
        """(label, url, device ID) of each board: the registry's, else ``device_id_pattern``
        for its place; none given twice, none a virtual device's."""
        out: list[tuple[str, str | None, str]] = []
        used: set[str] = set()
        virtual = [r.finder() for r in sequenced_ranges(self.run_cfg)]
        for n, (label, url) in enumerate(specs, start=1):
            url = urls.get(label, url)
            dev_id = self._registry.get(label) or (self._registry.get(url) if url else None)
            dev_id = dev_id or self.cfg.device_id_pattern.format(n=n)
            if dev_id in used:
                raise ConfigError(f"device ID {dev_id!r} given to two boards", key="boards")
            used.add(dev_id)
            self._refuse_virtual_id(label, dev_id, virtual)
            out.append((label, url, dev_id))
        return out

    def _refuse_virtual_id(self, label: str, dev_id: str, virtual: list[Finder]) -> None:
        """A board numbers its uploads from sequence 0 like a virtual device: one with a
        virtual device's ID would have one's uploads stored as the other's retries (the
        reference server de-duplicates (device, sequence)). Decided when the file is loaded,
        or with ``auto`` ports once they are listed, in prepare: before anything is sent."""
        for f in virtual:
            k = f.find(dev_id.strip())
            if k is not None:
                r = f.range
                raise ConfigError(
                    f"board {label} and scenario {r.owner!r} (device n={k} of {r.pattern!r}) "
                    f"both send device ID {dev_id!r}, each numbering uploads from sequence 0: "
                    "the server would store one's as the other's retries; give the board "
                    "another device_id (registry or device_id_pattern)",
                    source=self.run_cfg.source,
                    key="boards",
                )

    async def prepare(self, env: Environment) -> None:
        self._env = env
        target = self.cfg.target or env.target
        self.upload_url = target.rstrip("/") + self.device.endpoint
        reg = env.registry
        base = (("scenario", self.sc.name), ("kind", "physical"), *self.sc.tags)
        tags = tags_of((*base, ("endpoint", self.device.endpoint), ("method", "POST")))
        self._rec = RequestRecorder(reg, tags, env.intervals[self.sc.name], tags_of(base))
        self._iterations = reg.typed(Counter, "iterations", tags_of(base))
        self._dropped = reg.typed(Counter, "dropped_iterations", (("scenario", self.sc.name),))
        self._interval = env.intervals[self.sc.name]
        self._lost_counter = reg.typed(Counter, "boards_lost", (("kind", "physical"),))
        self._rejoined_counter = reg.typed(Counter, "boards_rejoined", (("kind", "physical"),))
        registry = self._registry
        specs = self._specs(registry)
        emulated = [label for label, _ in specs if label.startswith("emulated:")]
        urls: dict[str, str] = {}
        if emulated:
            from hw_bridge.appmode import start_app_boards

            # run_owned: a cancel while the boards start (a third Ctrl-C) still stops them
            self.emulated = await run_owned(
                None,
                lambda: start_app_boards(len(emulated), protocol=self.cfg.emulator_protocol),
                lambda boards: boards.stop(),
            )
            urls = {label: h.url for label, h in zip(emulated, self.emulated, strict=True)}
        for label, url, dev_id in self._board_ids(specs, urls):
            self.drivers.append(BoardDriver(self, label, url, dev_id))
        results = await asyncio.gather(*(d.setup() for d in self.drivers), return_exceptions=True)
        for d, res in zip(self.drivers, results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, HardwareError | BoardReplyError | OSError):
                    raise res
                d.mark_lost(f"not ready at start ({res})")
        ready = sum(d.state == BoardState.READY for d in self.drivers)
        wifi = ""
        if self.cfg.wifi_ssid:
            keyed = sum(d.wifi_key_set for d in self.drivers)
            wifi = f"; Wi-Fi {self.cfg.wifi_ssid!r}, key set on {keyed} of {len(self.drivers)}"
        env.notes.append(
            f"boards: {ready} of {len(self.drivers)} ready, following scenario {self.sc.name} "
            f"at {self.rate:g} uploads/s each, uploading to {self.upload_url}{wifi}"
        )

    # --- the run --------------------------------------------------------------------------------
    async def run(self, env: Environment, start: float) -> None:
        loop = asyncio.get_running_loop()
        begin = start + self.sc.start_time
        self.schedule_end = begin + self.duration
        # A board is done once its last upload is sent, up to one interval before the end.
        self.finished_after = self.schedule_end - 1.0 / self.rate - 0.5
        self.watch_until = self.schedule_end + self.grace_s + 2.0
        host_begin = now_us() + int((begin - loop.time()) * 1e6)
        ready = [d for d in self.drivers if d.state == BoardState.READY]
        results = await asyncio.gather(
            *(d.start(host_begin, self.duration) for d in ready), return_exceptions=True
        )
        for d, res in zip(ready, results, strict=True):
            if isinstance(res, BaseException):
                d.mark_lost(f"start refused ({res})")
        self._watchers = [loop.create_task(d.watch()) for d in self.drivers]
        waiter = loop.create_task(env.stop_event.wait())
        try:
            await asyncio.wait([*self._watchers, waiter], return_when=asyncio.FIRST_COMPLETED)
            while not env.stop_event.is_set() and not all(w.done() for w in self._watchers):
                _raise_first(self._watchers)
                await asyncio.wait(
                    [*self._watchers, waiter], return_when=asyncio.FIRST_COMPLETED, timeout=0.5
                )
            _raise_first(self._watchers)  # a watcher that died ends the run (runner), not quietly
        finally:
            if env.stop_event.is_set():
                self.stopping = True
            waiter.cancel()
            for w in self._watchers:
                w.cancel()
            await asyncio.gather(*self._watchers, waiter, return_exceptions=True)

    def record(self, r: BoardSample) -> None:
        # a board reports one latency: it is the whole wait (no connect/send/receive split)
        self._rec.record(
            RequestSample(
                status=r.status,
                failed=r.failed,
                duration_us=r.latency_us,
                connecting_us=0,
                sending_us=0,
                waiting_us=r.latency_us,
                receiving_us=0,
                corrected_us=r.latency_us + r.lag_us,
                sent=r.nbytes,
                received=0,
                # a board's uploads all carry X-Sequence: a 409 is a sequence conflict
                error=_CONFLICT if r.status == CONFLICT_STATUS else 0,
            )
        )
        if r.first:
            self._iterations.value += 1

    def _at(self) -> str:
        env = self._env
        return f"{env.elapsed:.1f}s" if env is not None and env.started_perf else "start"

    def board_lost(self, d: BoardDriver, reason: str) -> None:
        if self._env is None:
            return
        self._lost_counter.value += 1
        self._env.notes.append(f"board {d.label} ({d.device_id}) lost at {self._at()}: {reason}")

    def board_dropped(self, d: BoardDriver, count: int) -> None:
        """Chunks a board produced but never sent (its buffer was full): the followed
        scenario's ``dropped_iterations``, as a virtual device's missed arrivals are."""
        if self._env is None:
            return
        self._dropped.value += count
        self._interval.dropped += count

    def board_rejoined(self, d: BoardDriver) -> None:
        if self._env is None:
            return
        self._rejoined_counter.value += 1
        self._env.notes.append(f"board {d.label} ({d.device_id}) rejoined at {self._at()}")

    async def close(self) -> None:
        self.stopping = True
        try:
            await asyncio.gather(*(d.stop() for d in self.drivers), return_exceptions=True)
        finally:
            await self._release()
        bad = [f"{d.label}: {d.protocol_errors}" for d in self.drivers if d.protocol_errors]
        if self._env is not None and bad:
            self._env.notes.append(
                f"boards: result lines rejected as protocol errors ({', '.join(bad)})"
            )
        for d in self.drivers:
            if self._env is not None and d.stale:
                self._env.notes.append(
                    f"board {d.label} ({d.device_id}): the server already held {d.stale} of "
                    "its sequences on their first attempt and stored none of them (it numbers "
                    "from 0 after a boot: an earlier run against this server's ledger); they "
                    "count as delivered"
                )
            if self._env is not None and d.conflicts:
                self._env.notes.append(
                    f"board {d.label} ({d.device_id}): the server refused {d.conflicts} of its "
                    "uploads as sequence conflicts (409, error sequence-conflict) and stored "
                    "none of them: it already held those sequences with different audio; they "
                    "count as failed"
                )
        lost = [d for d in self.drivers if d.state == BoardState.LOST]
        if self._env is not None and any(d.lost for d in self.drivers):
            names = ", ".join(d.label for d in lost) or "none"
            total = sum(d.lost for d in self.drivers)
            self._env.notes.append(
                f"boards lost during the run: {total}; still lost at the end: {names}"
            )

    async def _release(self) -> None:
        """Close the links, then stop the emulated boards, even when cancelled meanwhile (a
        fourth Ctrl-C): what is not released here outlives the run. Both go on under shield
        (the loop's close waits for the emulator's stop); the cancel is raised after."""
        cancel: asyncio.CancelledError | None = None
        closing = asyncio.gather(*(d.close() for d in self.drivers), return_exceptions=True)
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError as exc:
            cancel = exc
        emu, self.emulated = self.emulated, None
        if emu is not None:
            stopped = asyncio.get_running_loop().run_in_executor(None, emu.stop)
            try:
                await asyncio.shield(stopped)
            except asyncio.CancelledError as exc:
                cancel = exc
        if cancel is not None:
            raise cancel

    def device_rows(self) -> list[DeviceRow]:
        return [d.row(self.sc.name) for d in self.drivers]
