"""Virtual devices and what they do each iteration (the seed's three scenarios).

A device is a few slots of state (index, sequence, counters, cookie jar) — about 160 bytes; its
ID string is made on first use, so an idle device never holds one — so a fleet of 1,000,000
fits in one process. Request bodies are zero-copy slices of the shared
:class:`audio_synth.PcmBank`; nothing is synthesized per request.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from scfleet_core.errors import ConfigError
from scfleet_core.secrets import Secret
from simulator.config import (
    IotUploadDevice,
    PythonDevice,
    RunConfig,
    ScenarioConfig,
)
from simulator.executors import TaskStarter
from simulator.http import KIND_INDEX, UNCONNECTED, ErrorKind, Request, Response, Transport
from simulator.metrics import (
    IntervalStats,
    IterationRecorder,
    Registry,
    RequestRecorder,
    RequestSample,
    tags_of,
)
from simulator.run.checks import check_passes
from simulator.run.device_row import VIRTUAL_COLUMNS, DeviceRow, csv_cell, line_format, plain


class VirtualDevice:
    """One simulated ESP32: identity, upload sequence and what happened to its requests.

    Each scenario makes its devices from a subclass that carries its ``id_pattern`` and
    ``id_start`` (:meth:`for_scenario`): ``device_id`` is formatted on first use and kept."""

    #: the scenario's id_pattern and id_start (a subclass per scenario sets them)
    pattern: ClassVar[str] = "{n}"
    id_start: ClassVar[int] = 0

    __slots__ = (
        "index",
        "_id",
        "seq",
        "requests",
        "ok",
        "failed",
        "bytes_ok",
        "cookies",
        "logins",
    )

    def __init__(self, index: int, device_id: str | None = None) -> None:
        self.index = index
        self._id = device_id
        self.seq = 0
        self.requests = 0
        self.ok = 0
        self.failed = 0
        self.bytes_ok = 0
        self.cookies: dict[str, str] | None = None
        self.logins = 0

    @classmethod
    def for_scenario(cls, pattern: str, id_start: int) -> type[VirtualDevice]:
        return type(
            cls.__name__, (cls,), {"__slots__": (), "pattern": pattern, "id_start": id_start}
        )

    @property
    def device_id(self) -> str:
        """The device's ``X-Device-ID``: made on first use, then kept (the request path)."""
        did = self._id
        if did is None:
            did = self._id = self.pattern.format(n=self.id_start + self.index)
        return did

    def id_now(self) -> str:
        """``device_id`` without keeping it (a row written once for an idle device)."""
        did = self._id
        return did if did is not None else self.pattern.format(n=self.id_start + self.index)


@dataclass
class RunContext:
    """What behaviours share for one run."""

    registry: Registry
    transport: Transport
    bank: Any  # audio_synth.PcmBank, built lazily by the runner when a scenario needs audio
    loop_to_perf: float  # add to a loop time to get perf_counter time
    kind: str = "virtual"
    target: str = ""  # base URL, for k6's ``url`` tag


def expected_ok(status: int) -> bool:
    """k6's default expected_response: 200–399."""
    return 200 <= status < 400


class Behaviour:
    """Shared plumbing: device creation, metric recording, checks.

    A behaviour is the executors' :class:`~simulator.executors.Starter`: by default each
    iteration of :meth:`iterate` runs as a task; a behaviour on the hot path overrides
    :meth:`start` to issue its request directly and finish from the transport's callback.
    """

    def __init__(self, sc: ScenarioConfig, ctx: RunContext, interval: IntervalStats) -> None:
        self.sc = sc
        self.ctx = ctx
        self.interval = interval
        self.closed = False  # after the graceful stop: late replies are not recorded
        self.think_time = sc.think_time
        self._tasks = TaskStarter(self.iterate)
        self.devices: list[VirtualDevice] = []
        dev = sc.device
        self._device = VirtualDevice.for_scenario(dev.id_pattern, dev.id_start)
        base = (("scenario", sc.name), ("kind", ctx.kind), *sc.tags)
        self._base_tags = base
        reg = ctx.registry
        self._iterations = IterationRecorder(
            reg, tags_of(base), tags_of((("scenario", sc.name),)), interval
        )
        self._recorders: dict[tuple[str, str], RequestRecorder] = {}
        self._checks = [
            (c, reg.get("checks", tags_of((*base, ("check", c.name))))) for c in sc.checks
        ]

    def make_device(self, index: int) -> VirtualDevice:
        dev = self._device(index)
        self.devices.append(dev)
        return dev

    def recorder(self, method: str, endpoint: str) -> RequestRecorder:
        key = (method, endpoint)
        rec = self._recorders.get(key)
        if rec is None:
            url = ("url", self.ctx.target + endpoint)
            tags = tags_of((*self._base_tags, ("endpoint", endpoint), ("method", method), url))
            rec = self._recorders[key] = RequestRecorder(
                self.ctx.registry, tags, self.interval, tags_of(self._base_tags)
            )
        return rec

    def record(
        self,
        rec: RequestRecorder,
        resp: Response,
        scheduled_perf: float | None,
        run_checks: bool = True,
    ) -> bool:
        """Record a response; returns whether it counts as failed."""
        failed = resp.status == 0 or not expected_ok(resp.status)
        # k6: duration excludes blocked (the wait for a connection) and connecting
        begin = resp.started + resp.blocked + resp.connecting
        sending = resp.sending
        dur = int((resp.ended - begin) * 1e6)
        wait = int((resp.headers_at - begin - sending) * 1e6)
        recv = int((resp.ended - resp.headers_at) * 1e6)
        if resp.kind is not None and resp.kind in UNCONNECTED:  # k6: no connection, all 0
            dur = wait = recv = 0
            sending = 0.0
        corr = int((resp.ended - scheduled_perf) * 1e6) if scheduled_perf is not None else dur
        # positional on the hot path (keywords cost ~1 µs per request): the field order is
        # RequestSample's, named on each line
        rec.record(
            RequestSample(
                resp.status,  # status
                failed,  # failed
                dur,  # duration_us
                int(resp.connecting * 1e6),  # connecting_us
                int(sending * 1e6),  # sending_us
                wait,  # waiting_us
                recv,  # receiving_us
                corr,  # corrected_us
                resp.sent,  # sent
                resp.received,  # received
                KIND_INDEX[resp.kind] if resp.kind is not None else 0,  # error
                int(resp.blocked * 1e6),  # blocked_us
            )
        )
        if run_checks and self._checks:
            cache: list[Any] = []
            for check, rate in self._checks:
                rate.add(check_passes(check, resp, cache))
        return failed

    def start(self, dev: VirtualDevice, scheduled: float, finished: Callable[[], None]) -> None:
        self._tasks.start(dev, scheduled, finished)

    async def abandon(self) -> None:
        self.closed = True
        await self._tasks.abandon()

    def iteration_done(self, started_perf: float, scheduled_perf: float) -> None:
        """Count an iteration that started at ``started_perf``, due at ``scheduled_perf``."""
        self._iterations.record(
            int((time.perf_counter() - started_perf) * 1e6),
            int((started_perf - scheduled_perf) * 1e6),
        )

    async def end_iteration(self, started_perf: float, scheduled_perf: float) -> None:
        """An iteration's last step: the think time, k6's ``sleep()`` at the end of the script.
        It is part of the iteration (and of ``iteration_duration``); a stop while sleeping
        cancels the iteration here, so it counts as interrupted, not as complete (k6 too), and
        as cut in its think time: its requests were all answered, so the stage table and the
        gate must not judge it as one whose request got no answer."""
        if self.think_time > 0:
            try:
                await asyncio.sleep(self.think_time)
            except asyncio.CancelledError:
                self.interval.think_cut += 1
                raise
        self.iteration_done(started_perf, scheduled_perf)

    async def iterate(self, dev: VirtualDevice, scheduled: float) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """After the scenario: the devices' own goodbyes (Python devices' ``on_stop``)."""

    def note_counts(self) -> list[NoteCount]:
        """What its devices counted for the summary's notes (summed over workers)."""
        return []

    def notes(self) -> list[str]:
        """One-line notes for the summary (Python devices' errors, duplicates, conflicts)."""
        return count_notes(self.note_counts())

    def device_rows(self) -> ScenarioRows:
        """Its devices' rows, made one at a time as ``devices.csv`` is written."""
        return ScenarioRows(self.sc.name, self.ctx.kind, self.devices, self._device.pattern)


class ScenarioRows:
    """One scenario's device rows, made from its devices when read (never held as a list);
    ``devices.csv`` gets their lines formatted straight from the devices (:meth:`csv_lines`)."""

    virtual_only = True

    def __init__(
        self, scenario: str, kind: str, devices: list[VirtualDevice], pattern: str = ""
    ) -> None:
        self.scenario = scenario
        self.kind = kind
        self.devices = devices
        self._plain_ids = plain(pattern)  # its IDs need no quoting: no check per device

    def csv_lines(self, columns: tuple[str, ...]) -> Iterator[str]:
        """Each device's ``devices.csv`` line (as ``csv`` writes its row, without making it)."""
        fmt = line_format(self.scenario, self.kind, columns)
        cell = _same if self._plain_ids else csv_cell
        return (
            fmt % (cell(d.id_now()), d.requests, d.ok, d.failed, d.seq, d.bytes_ok, d.logins)
            for d in self.devices
        )

    def part_lines(self, key: str, devices: Iterable[VirtualDevice]) -> Iterator[str]:
        """A worker's part lines (:mod:`simulator.run.device_parts`): ``key`` (a %-format of
        the global index) then the line of ``devices.csv``."""
        fmt = line_format(self.scenario, self.kind, VIRTUAL_COLUMNS, key)
        cell = _same if self._plain_ids else csv_cell
        return (
            fmt
            % (d.index, cell(d.id_now()), d.requests, d.ok, d.failed, d.seq, d.bytes_ok, d.logins)
            for d in devices
        )

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[DeviceRow]:
        return (self.row(d) for d in self.devices)

    def row(self, d: VirtualDevice) -> DeviceRow:
        return DeviceRow(
            scenario=self.scenario,
            kind=self.kind,
            device_id=d.id_now(),
            requests=d.requests,
            ok=d.ok,
            failed=d.failed,
            next_sequence=d.seq,
            bytes_ok=d.bytes_ok,
            logins=d.logins,
        )


def _same(text: str) -> str:
    return text


#: The most connections one process opens before its start with ``warm_connections = "auto"``.
MAX_WARM = 1000


def warm_connections(cfg: RunConfig) -> int:
    """Keep-alive connections one process opens before its schedule starts (``[run]
    warm_connections``; a worker's config holds its share, :func:`segment_config`).

    0, the default: none — k6 dials on demand, and a server that serves few connections at
    once (an accept loop stopped at its limit) held the requests sent on pre-dialled idle
    connections until one timed out (probe12: p90 28 s where on demand gave p99 4.5 ms).
    N: N, as asked (the open-file limit counts them, :mod:`simulator.run.limits`).
    "auto": the devices its open-model scenarios pre-allocate from the start (k6's
    preAllocatedVUs: the requests expected in flight at once), no more than each can start,
    nor :data:`MAX_WARM`; none for a scenario whose devices close their connection after
    each request (``keep_alive = false``), one that starts later, or looping VUs (a closed
    model)."""
    asked = cfg.run.warm_connections
    if asked != "auto":
        return asked
    warm = 0
    for sc in cfg.scenarios:
        pre = sc.executor.pre_allocated()
        if pre is None or sc.start_time > 0 or not sc.device.keep_alive:
            continue
        iterations = sc.executor.iteration_bound(sc.think_time)
        warm += pre if iterations is None else min(pre, iterations)
    return min(warm, MAX_WARM)


#: the reference server's answer to a (device, sequence) it already held: stored nothing
_DUPLICATE = re.compile(rb'"duplicate"\s*:\s*true')


def is_duplicate(body: bytes) -> bool:
    """Whether an answer says ``"duplicate": true``. The regex scans the whole body, ~0.6 µs
    for the reference server's 177-byte "duplicate": false (sre's prefix search, ~3.5 ns a
    byte); a body too short to hold it (an empty one, a sink's) or without ``true`` (the
    reference server's every other answer) is decided by ``find`` (~0.5 ns a byte; ``in``
    costs more on bytes: it tries the operand as an int first)."""
    return len(body) >= 16 and body.find(b"true") >= 0 and _DUPLICATE.search(body) is not None


def duplicates_note(scenario: str, n: int, first: str, *, retries: bool) -> list[str]:
    """The summary's note on ``n`` answers saying ``"duplicate": true`` (none, no note).
    ``retries``: the devices may re-send a sequence themselves (Python devices may)."""
    if not n:
        return []
    why = "a re-send of one whose answer was lost, or " if retries else ""
    return [
        f"scenario {scenario}: the server answered {n} uploads as duplicates (first from "
        f"{first}) and stored none of them: it already held those (device, sequence) pairs "
        f"({why}an earlier run against this server's ledger: each device numbers from 0); "
        "they count as delivered"
    ]


#: a 409 to an upload carrying X-Sequence: the server holds that (device, sequence) with another
#: body (the reference server's conflict) and stored nothing; its ``error`` is sequence-conflict
CONFLICT_STATUS = 409


def conflicts_note(scenario: str, n: int, first: str) -> list[str]:
    """The summary's note on ``n`` uploads refused as sequence conflicts (none, no note)."""
    if not n:
        return []
    return [
        f"scenario {scenario}: the server refused {n} uploads as sequence conflicts (409, error "
        f"sequence-conflict; first from {first}) and stored none of them: it already held "
        "those (device, sequence) pairs with different audio (an earlier run against this "
        "server's ledger with other audio, or another sender with the same ID: each device "
        "numbers from 0); they count as failed"
    ]


#: a scenario's error notes: the most frequent messages, the rest in one line
MAX_ERROR_NOTES = 5
#: distinct error messages a process hands on (its Final); the rest travel as one count
MAX_ERROR_MESSAGES = 1000


@dataclass(frozen=True)
class NoteCount:
    """Something a scenario's devices counted for the summary's notes: a Python device's error
    message (``what="error"``, ``text``), errors past the messages handed on (``"other"``),
    answers as duplicates (``"duplicates"``; ``"retries"`` when the devices may re-send
    themselves) or sequence conflicts (``"conflicts"``), with the first device. With workers
    each sends its counts and the note is of their sum (:func:`count_notes`): a worker's own
    lines said its share (``5 ×`` of 10), and equal ones were kept once."""

    scenario: str
    what: str
    count: int
    text: str = ""
    first: str = ""


def count_notes(counts: Iterable[NoteCount]) -> list[str]:
    """The notes of ``counts`` summed per scenario, kind and message (the first device is the
    first one named), in the order their scenarios first appear."""
    merged: dict[tuple[str, str, str], list[Any]] = {}
    for c in counts:
        got = merged.setdefault((c.scenario, c.what, c.text), [0, ""])
        got[0] += c.count
        got[1] = got[1] or c.first
    out: list[str] = []
    for scenario in dict.fromkeys(k[0] for k in merged):
        errors = sorted(
            [(k[2], v[0]) for k, v in merged.items() if k[0] == scenario and k[1] == "error"],
            key=lambda kv: -kv[1],
        )
        out += [f"scenario {scenario}: {n} × {text}" for text, n in errors[:MAX_ERROR_NOTES]]
        rest = sum(n for _, n in errors[MAX_ERROR_NOTES:])
        rest += merged.get((scenario, "other", ""), [0, ""])[0]
        if rest:
            out.append(f"scenario {scenario}: {rest} more errors of other kinds")
        for what in ("duplicates", "retries"):
            n, first = merged.get((scenario, what, ""), (0, ""))
            out += duplicates_note(scenario, n, first, retries=what == "retries")
        n, first = merged.get((scenario, "conflicts", ""), (0, ""))
        out += conflicts_note(scenario, n, first)
    return out


class SequenceAnswers:
    """A scenario's uploads the server stored nothing of, and why, with the first device that
    got each kind: answers saying ``"duplicate": true`` (it held that (device, sequence):
    counted as delivered) and 409s to uploads carrying X-Sequence (held with other audio:
    error sequence-conflict, counted as failed); and the summary's notes on them. One home
    for :class:`IotUpload` and :class:`PythonDevices`, whose callers decide what is one (the
    hot path's checks stay inline there)."""

    __slots__ = ("duplicates", "first_duplicate", "conflicts", "first_conflict")

    def __init__(self) -> None:
        self.duplicates = 0
        self.first_duplicate = ""
        self.conflicts = 0
        self.first_conflict = ""

    def duplicate(self, device_id: str) -> None:
        """An answer saying ``"duplicate": true`` (:func:`is_duplicate`)."""
        self.duplicates += 1
        self.first_duplicate = self.first_duplicate or device_id

    def conflict(self, resp: Response, device_id: str) -> None:
        """A 409 to an upload carrying X-Sequence: named sequence-conflict, not a plain 4xx."""
        resp.kind = ErrorKind.SEQUENCE_CONFLICT
        self.conflicts += 1
        self.first_conflict = self.first_conflict or device_id

    def note_counts(self, scenario: str, *, retries: bool) -> list[NoteCount]:
        """``retries``: the devices may re-send a sequence themselves (Python devices may)."""
        return [
            NoteCount(
                scenario,
                "retries" if retries else "duplicates",
                self.duplicates,
                first=self.first_duplicate,
            ),
            NoteCount(scenario, "conflicts", self.conflicts, first=self.first_conflict),
        ]


def _sequenced(headers: Mapping[str, str]) -> bool:
    return any(k.lower() == "x-sequence" for k in headers)


class IotUpload(Behaviour):
    """Seed scenario 2: raw PCM with X-Device-ID / X-Sample-Rate / X-Sequence."""

    def __init__(self, sc: ScenarioConfig, ctx: RunContext, interval: IntervalStats) -> None:
        super().__init__(sc, ctx, interval)
        cfg = sc.device
        assert isinstance(cfg, IotUploadDevice)
        self.cfg = cfg
        self._static = {
            "Content-Type": "application/octet-stream",
            "X-Sample-Rate": str(cfg.sample_rate),
            **dict(cfg.headers),
        }
        self._rec = self.recorder("POST", cfg.endpoint)
        # uploads answered as duplicates (a virtual device never re-sends, so each is one the
        # server held before this run: a kept ledger) or refused as sequence conflicts (409)
        self.answers = SequenceAnswers()
        #: the open model's requests in flight (:meth:`start` with no waiter), by id: those a
        #: graceful stop cuts (:meth:`abandon`) had written bytes that count in ``data_sent``.
        #: A waiter's request is counted by its waiter's cancel instead; only the arrival
        #: driver calls ``abandon``, so a VU's was here for nothing.
        self._inflight: dict[int, Request] = {}

    def start(
        self,
        dev: VirtualDevice,
        scheduled: float,
        finished: Callable[[], None],
        count: bool = True,
        waiter: asyncio.Future[None] | None = None,
    ) -> None:
        """Write the upload now and record it from the transport's callback (the hot path).
        ``count=False``: the caller ends the iteration itself (after the think time).
        ``waiter``: the future a looping VU's iteration awaits; once cancelled (a graceful
        stop or ramp-down cut the iteration), the reply is recorded nowhere, as in k6, and
        the bytes the request had written go to ``data_sent`` (k6's too; they were in no
        figure)."""
        if count and self.think_time > 0:  # the sleep belongs to the iteration: one task each
            self._tasks.start(dev, scheduled, finished)
            return
        cfg = self.cfg
        sched_perf = scheduled + self.ctx.loop_to_perf
        seq = dev.seq
        dev.seq = seq + 1
        body = self.ctx.bank.chunk(dev.index, seq, cfg.chunk_bytes)
        headers = {**self._static, "X-Device-ID": dev.device_id, "X-Sequence": str(seq)}
        now = time.perf_counter()
        req = Request("POST", cfg.endpoint, headers, body, cfg.keep_alive)
        if waiter is None:
            inflight, key = self._inflight, id(req)
            inflight[key] = req

        def done(resp: Response) -> None:
            if waiter is None:
                inflight.pop(key, None)
            if not self.closed and (waiter is None or not waiter.cancelled()):
                dev.requests += 1
                if resp.status == CONFLICT_STATUS and resp.kind is None:
                    self.answers.conflict(resp, dev.device_id)  # not stored: named, not a 4xx
                if self.record(self._rec, resp, sched_perf):
                    dev.failed += 1
                else:
                    dev.ok += 1
                    dev.bytes_ok += cfg.chunk_bytes
                    if is_duplicate(resp.body):
                        self.answers.duplicate(dev.device_id)
                if count:
                    self.iteration_done(now, sched_perf)
            finished()

        if waiter is not None:

            def cut(w: asyncio.Future[None]) -> None:
                if w.cancelled() and req.written:
                    self._rec.cut_sent(req.written)  # k6 counts what it wrote

            waiter.add_done_callback(cut)
        self.ctx.transport.submit(req, done)

    async def abandon(self) -> None:
        self.closed = True
        for req in self._inflight.values():
            if req.written:
                self._rec.cut_sent(req.written)
        self._inflight.clear()
        await super().abandon()

    def note_counts(self) -> list[NoteCount]:
        """Uploads the server answered as retries it already held: none of them stored, yet
        each counts as delivered (before, silently: a second run against one ledger); and
        uploads it refused as sequence conflicts (other audio under a sequence it holds)."""
        return self.answers.note_counts(self.sc.name, retries=False)

    async def iterate(self, dev: VirtualDevice, scheduled: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finished() -> None:
            if not fut.done():
                fut.set_result(None)

        think = self.think_time > 0
        started = time.perf_counter()
        # a cut cancels ``fut`` (the task awaits it); the request stays with the transport,
        # whose late reply (or 'closed-before-answer' as the run closed it) was recorded as
        # a request and a complete iteration beside the interrupted one
        self.start(dev, scheduled, finished, count=not think, waiter=fut)
        await fut
        if think:
            await self.end_iteration(started, scheduled + self.ctx.loop_to_perf)


@dataclass(frozen=True)
class Account:
    username: str
    password: Secret


#: The longest line an accounts file may have (characters): the file is read a line at a
#: time, and a line that never ends (``/dev/zero``) was read until memory ran out.
MAX_ACCOUNTS_LINE = 64 * 1024


def _account_lines(fh: Any, path: Path, key: str) -> Iterator[str]:
    while line := fh.readline(MAX_ACCOUNTS_LINE + 1):
        if len(line) > MAX_ACCOUNTS_LINE:
            raise ConfigError(
                f"a line longer than {MAX_ACCOUNTS_LINE} characters", source=str(path), key=key
            )
        yield line


def load_accounts(path: Path, needed: int, key: str) -> list[Account]:
    """Rows ``username,password``; fewer rows than devices is an error naming the file."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(_account_lines(fh, path, key)))
    except FileNotFoundError:
        raise ConfigError("no such accounts file", source=str(path), key=key) from None
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read accounts file: {type(exc).__name__}", source=str(path), key=key
        ) from None
    accounts = []
    for i, row in enumerate(rows):
        user, pw = row.get("username"), row.get("password")
        if not user or pw is None:
            raise ConfigError(
                f"row {i + 2} needs 'username' and 'password' columns", source=str(path), key=key
            )
        accounts.append(Account(user, Secret(pw)))
    if len(accounts) < needed:
        raise ConfigError(
            f"has {len(accounts)} accounts but the scenario can run up to {needed} devices "
            "(one row per device)",
            source=str(path),
            key=key,
        )
    return accounts


class _Slot:
    """A Python device's binding to its virtual device: the first request of an iteration is
    measured from the iteration's scheduled time (``http_req_corrected_duration``)."""

    __slots__ = ("dev", "sched")

    def __init__(self, dev: VirtualDevice) -> None:
        self.dev = dev
        self.sched: float | None = None


class PythonDevices(Behaviour):
    """Devices written on :mod:`simulator.userdevice`: each virtual device runs an instance of
    a :class:`~simulator.userdevice.Device` class — the user's (``kind = "python:..."``) or a
    built-in kind's (:mod:`simulator.builtin_devices`) — its requests recorded like any other."""

    #: one multipart boundary for every form a device sends
    BOUNDARY = "scfleet-7d1f0c2a9b3e4d5f"
    STOP_TIMEOUT = 10.0  # all on_stop calls of a scenario together

    def __init__(
        self,
        sc: ScenarioConfig,
        ctx: RunContext,
        interval: IntervalStats,
        accounts: list[Account] | None = None,
    ) -> None:
        super().__init__(sc, ctx, interval)
        cfg = sc.device
        self.cfg = cfg
        self._static = dict(cfg.headers)
        self._keep_alive = cfg.keep_alive
        self._audio_bytes = cfg.audio_bytes()
        reg = ctx.registry
        own = (("scenario", sc.name), ("kind", ctx.kind))
        self._own = own
        self._errors: Any = None  # iteration_errors: a user class always shows it, a built-in
        if isinstance(cfg, PythonDevice):  # kind only once one of its iterations failed
            self.cls = cfg.code.load()
            self._options: dict[str, Any] = dict(cfg.options)
            for name, mtype, contains in cfg.code.metrics:
                if reg.types.get(name) is None:
                    reg.define(name, mtype, contains)
            self._errors = reg.get("iteration_errors", tags_of(own))
        else:
            from simulator import builtin_devices

            self.cls = getattr(builtin_devices, _BUILTIN_CLASSES[cfg.kind])
            self._options = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
            if cfg.needs_accounts:
                self._options["accounts"] = accounts or []
        self._messages: dict[str, int] = {}
        self.answers = SequenceAnswers()  # duplicates and sequence conflicts, as IotUpload's
        self._users: dict[int, Any] = {}  # device index -> started instance
        self._check_rates: dict[str, Any] = {}

    def _error(self, message: str) -> None:
        if self._errors is None:
            self._errors = self.ctx.registry.get("iteration_errors", tags_of(self._own))
        self._errors.add(1)
        line = " ".join(message.split())[:200]
        self._messages[line] = self._messages.get(line, 0) + 1

    def _metric(self, metric: Any, value: float, tags: Mapping[str, str]) -> None:
        series = self.ctx.registry.get(metric.name, tags_of((*self._own, *tags.items())))
        mtype = metric.type
        if mtype == "counter":
            series.add(value)
        elif mtype == "rate":
            series.add(bool(value))
        elif mtype == "gauge":
            series.set(value)
        else:  # trend: thousandths of its unit (µs of a time trend), 3 significant digits
            if not 0 <= value < 1e15:
                raise ValueError(f"Trend {metric.name}: expected a value >= 0, got {value!r}")
            series.add_us(round(value * 1000))

    def _check(self, name: str, ok: bool) -> None:
        rate = self._check_rates.get(name)
        if rate is None:
            tags = tags_of((*self._base_tags, ("check", name)))
            rate = self._check_rates[name] = self.ctx.registry.get("checks", tags)
        rate.add(ok)

    def _body(
        self,
        data: Any,
        json_value: Any,
        files: Mapping[str, tuple[str, Any, str]] | None,
        fields: Mapping[str, str] | None,
    ) -> tuple[Any, str | None, int]:
        """(body, content type, payload bytes): raw bytes, JSON, or a multipart form (its
        payload: the files' contents, as devices.csv's bytes_ok counts a WAV upload)."""
        if json_value is not None:
            raw = json.dumps(json_value).encode()
            return raw, "application/json", len(raw)
        if files or fields:
            b = self.BOUNDARY
            parts: list[Any] = []
            for k, v in (fields or {}).items():
                parts.append(
                    f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                )
            payload = 0
            for k, (filename, content, ctype) in (files or {}).items():
                parts.append(
                    f'--{b}\r\nContent-Disposition: form-data; name="{k}"; '
                    f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
                )
                pieces = content if isinstance(content, tuple) else (content,)
                parts.extend(pieces)
                payload += sum(len(p) for p in pieces)
                parts.append(b"\r\n")
            parts.append(f"--{b}--\r\n".encode())
            return parts, f"multipart/form-data; boundary={b}", payload
        if data is None:
            return None, None, 0
        return data, "application/octet-stream", len(data)

    async def _send(
        self,
        slot: _Slot,
        method: str,
        path: str,
        data: Any,
        json_value: Any,
        files: Any,
        fields: Any,
        headers: Mapping[str, str] | None,
        name: str | None,
        checks: bool = True,
    ) -> Any:
        from simulator.userdevice import Reply

        if not path.startswith("/"):
            raise ValueError(f"request path must start with '/', got {path!r}")
        body, ctype, nbytes = self._body(data, json_value, files, fields)
        hdrs = dict(self._static)
        if ctype is not None:
            hdrs["Content-Type"] = ctype
        if headers:
            hdrs.update(headers)
        dev = slot.dev
        method = method.upper()
        req = Request(method, path, hdrs, body, self._keep_alive, dev.cookies)
        try:
            resp = await self.ctx.transport.send(req)
        except asyncio.CancelledError:  # cut: in no figure but data_sent, as in k6
            if req.written:
                self.recorder(method, name or path).cut_sent(req.written)
            raise
        dev.requests += 1
        dev.seq += 1
        if resp.status == CONFLICT_STATUS and resp.kind is None and _sequenced(hdrs):
            self.answers.conflict(resp, dev.device_id)
        if self.record(self.recorder(method, name or path), resp, slot.sched, checks):
            dev.failed += 1
        else:
            dev.ok += 1
            dev.bytes_ok += nbytes
            if is_duplicate(resp.body):
                self.answers.duplicate(dev.device_id)
        slot.sched = None
        if resp.set_cookies or resp.cleared_cookies:  # a cookie jar per device, as a browser
            jar = dev.cookies if dev.cookies is not None else {}
            jar.update(resp.set_cookies)
            for gone in resp.cleared_cookies:
                jar.pop(gone, None)
            dev.cookies = jar
        took = (resp.ended - resp.started) * 1000 if resp.ended else 0.0
        return Reply(resp.status, resp.body, resp.headers, resp.error, took, resp.body_cut)

    def _make(self, dev: VirtualDevice, slot: _Slot) -> Any:
        from functools import partial

        from simulator.userdevice import AudioStream, Client

        user = self.cls()
        user.device_id = dev.device_id
        user.index = dev.index
        user.scenario = self.sc.name
        user.options = self._options
        user.client = Client(partial(self._send, slot), partial(_clear_jar, dev))
        nbytes = self._audio_bytes
        user.audio = AudioStream(self.ctx.bank, dev.index, nbytes) if nbytes else None
        user._scfleet_recorder = self._metric
        user._scfleet_check = self._check
        user._scfleet_slot = slot
        return user

    async def iterate(self, dev: VirtualDevice, scheduled: float) -> None:
        now = time.perf_counter()
        sched_perf = scheduled + self.ctx.loop_to_perf
        user = self._users.get(dev.index)
        step = "__init__"  # the note names the user's method that raised
        try:
            if user is None:
                slot = _Slot(dev)
                slot.sched = sched_perf
                fresh = self._make(dev, slot)
                step = "on_start"
                await fresh.on_start()
                user = self._users[dev.index] = fresh
            else:
                user._scfleet_slot.sched = sched_perf
            step = "iteration"
            if await user.iteration() is False:
                self._error(f"{self.cls.__name__}.iteration returned False")
                self.interval.iteration_errors += 1
        except asyncio.CancelledError:
            raise
        except _USER_RAISED as exc:  # the user's code: counted, the run goes on
            self._error(f"{self.cls.__name__}.{step} raised {type(exc).__name__}: {exc}")
            self.interval.iteration_errors += 1
        finally:
            if user is not None:  # devices.csv: the instance's own sequence and logins
                _row_counts(dev, user)
        await self.end_iteration(now, sched_perf)

    async def close(self) -> None:
        async def stop(user: Any) -> None:
            try:
                await user.on_stop()
            except _USER_RAISED as exc:  # counted like an iteration's error
                self._error(f"{self.cls.__name__}.on_stop raised {type(exc).__name__}: {exc}")

        users, self._users = list(self._users.values()), {}
        if not users:
            return
        tasks = [asyncio.ensure_future(stop(u)) for u in users]
        _done, late = await asyncio.wait(tasks, timeout=self.STOP_TIMEOUT)
        for t in late:
            t.cancel()
        if late:
            self._error(
                f"{self.cls.__name__}.on_stop did not return within {self.STOP_TIMEOUT:g} s"
            )

    def note_counts(self) -> list[NoteCount]:
        name = self.sc.name
        top = sorted(self._messages.items(), key=lambda kv: -kv[1])
        counts = [NoteCount(name, "error", n, msg) for msg, n in top[:MAX_ERROR_MESSAGES]]
        counts.append(NoteCount(name, "other", sum(n for _, n in top[MAX_ERROR_MESSAGES:])))
        return counts + self.answers.note_counts(name, retries=True)


#: What a device's method may raise and the run survives: ``sys.exit()`` and a
#: ``KeyboardInterrupt`` of its own too. Neither comes from a signal here (the run's handlers
#: count those), and asyncio re-raises both out of the loop: the run died with the script's
#: exit code and wrote nothing.
_USER_RAISED = (Exception, SystemExit, KeyboardInterrupt)


def _clear_jar(dev: VirtualDevice) -> None:
    dev.cookies = None


def _row_counts(dev: VirtualDevice, user: Any) -> None:
    """devices.csv's next_sequence, logins and bytes_ok: the instance's ``seq``, ``logins`` and
    ``bytes_ok`` when it keeps them as ints; otherwise its requests, 0, and the payload bytes
    of its answered requests."""
    seq = getattr(user, "seq", None)
    if type(seq) is int:
        dev.seq = seq
    logins = getattr(user, "logins", None)
    if type(logins) is int:
        dev.logins = logins
    sent = getattr(user, "bytes_ok", None)
    if type(sent) is int:
        dev.bytes_ok = sent


def device_count_bound(sc: ScenarioConfig) -> int:
    """The most devices a scenario can use at once."""
    return sc.executor.device_bound()


def make_behaviour(
    sc: ScenarioConfig,
    ctx: RunContext,
    interval: IntervalStats,
    accounts: Mapping[str, list[Account]] | None = None,
) -> Behaviour:
    return _BEHAVIOURS[sc.device.kind](sc, ctx, interval, (accounts or {}).get(sc.name, []))


#: device kind -> the behaviour its devices follow
_BEHAVIOURS: dict[str, Callable[..., Behaviour]] = {
    "iot_upload": lambda sc, ctx, iv, _accounts: IotUpload(sc, ctx, iv),
    "ai_analysis": lambda sc, ctx, iv, _accounts: PythonDevices(sc, ctx, iv),
    "auth_flow": PythonDevices,
    "python": lambda sc, ctx, iv, _accounts: PythonDevices(sc, ctx, iv),
}
#: built-in kinds written on the device API -> their class in simulator.builtin_devices
#: (iot_upload's runs on the fast path; PythonDevices on its config runs the class: tests)
_BUILTIN_CLASSES = {"ai_analysis": "AiAnalysis", "auth_flow": "AuthFlow", "iot_upload": "IotUpload"}
