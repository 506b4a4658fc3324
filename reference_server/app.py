"""The aiohttp application: SignalCraft's routes with the real app's request shapes.

Handlers do only cheap work on the event loop: header checks, a SHA-256 and a queue append for
uploads, one HMAC for verify. Everything slow leaves the loop: analysis goes to a process pool
(so the server saturates the way a Flask app behind gunicorn does), password hashing to a thread
pool, ledger commits to a group-committing thread (awaited before answering).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from reference_server import (
    ANALYZE_PATH,
    HEALTH_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    SESSION_COOKIE,
    STATS_PATH,
    UPLOAD_PATH,
    VERIFY_PATH,
)
from reference_server.accounts import UserStore
from reference_server.analysis import (
    AudioRejected,
    NormalProfile,
    analyze_bytes,
    default_profile,
    worker_init,
    worker_ping,
)
from reference_server.config import ServerConfig
from reference_server.guard import ConnectionGuard
from reference_server.ledger import NEW, Ledger, LedgerClosed, Upload
from reference_server.sessions import (
    InvalidSession,
    Session,
    SessionSigner,
    load_or_create_key,
)
from scfleet_core.errors import ScfleetError
from scfleet_core.secrets import Secret

log = logging.getLogger(__name__)

DEVICE_ID_MAX = 64
_DEVICE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# ASCII digits only: int() would also take "16_000", "+16000", " 7" and Arabic-Indic digits.
_DIGITS_RE = re.compile(r"[0-9]{1,19}")
_MULTIPART_SLACK = 64 * 1024  # boundaries, part headers and small form fields around the file
_FORM_LIMIT = 64 * 1024  # login bodies
_CHUNK = 64 * 1024


@dataclass
class Stats:
    """Counters served by ``/api/stats``; touched only on the event loop, so no locking."""

    uploads_accepted: int = 0
    uploads_rejected: int = 0
    uploads_duplicate: int = 0  # same (device, sequence) and body again: answered, no second row
    uploads_conflict: int = 0  # same (device, sequence), another body: 409, nothing stored
    uploads_unstored: int = 0  # the ledger failed: answered 503
    upload_bytes: int = 0
    upload_rejections: Counter[str] = field(default_factory=Counter)
    analyses_ok: int = 0
    analyses_rejected: int = 0
    analyses_in_flight: int = 0
    analyses_in_flight_max: int = 0
    logins_ok: int = 0
    logins_failed: int = 0
    logins_in_flight: int = 0
    verifies_ok: int = 0
    verifies_failed: int = 0
    logouts: int = 0
    body_timeouts: int = 0


@dataclass
class ServerState:
    config: ServerConfig
    profile: NormalProfile
    ledger: Ledger
    users: UserStore
    signer: SessionSigner
    analysis_pool: Executor
    hash_pool: ThreadPoolExecutor
    stats: Stats = field(default_factory=Stats)
    guard: ConnectionGuard | None = None
    started_at: float = field(default_factory=time.time)


STATE = web.AppKey("state", ServerState)
GUARD = web.AppKey("guard", ConnectionGuard)  # set by server.py; absent in in-process tests
ExecutorFactory = Callable[[ServerConfig], Executor]


def process_pool(config: ServerConfig) -> Executor:
    """The production analysis pool: ``spawn``ed processes, safe next to the ledger thread.

    Each worker is held to one thread of BLAS/FFT maths, like a gunicorn sync worker, so
    ``--analysis-workers N`` means N cores at most and the server saturates where it should.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # inherited by the spawned workers
    return ProcessPoolExecutor(
        max_workers=config.analysis_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker_init,
        initargs=(os.getpid(),),
    )


def _error(status: int, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": reason, **extra}, status=status)


def _malformed(request: web.Request, reason: str, exc: BaseException) -> web.Response:
    """400 for a hostile or broken body: one log line naming the route and the exception type,
    never a traceback or the request's bytes (they are the attacker's to choose)."""
    log.warning("400 %s %s: %s (%s)", request.method, request.path, reason, type(exc).__name__)
    return _error(400, reason)


@web.middleware
async def _one_line_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Safety net: an exception no handler expected is one log line and a 500, not a traceback
    carrying request bytes; malformed HTTP found while reading a body is a 400."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except HttpProcessingError as exc:
        return _malformed(request, "malformed request body", exc)
    except (asyncio.CancelledError, ConnectionError, _BodyTimeout):
        raise
    except Exception as exc:
        log.error("500 %s %s: unexpected %s", request.method, request.path, type(exc).__name__)
        return _error(500, "internal error")


class _BodyTimeout(Exception):
    pass


async def _body(request: web.Request, read: Any) -> Any:
    """Await ``read`` (a body-reading coroutine) within the body deadline, else _BodyTimeout."""
    try:
        async with asyncio.timeout(request.app[STATE].config.body_timeout_s):
            return await read
    except TimeoutError:
        raise _BodyTimeout from None


def _body_timeout(request: web.Request) -> web.Response:
    """408, and the connection is closed: its unread body would follow the answer."""
    request.app[STATE].stats.body_timeouts += 1
    response = _error(408, "request body not received in time")
    response.force_close()
    return response


@web.middleware
async def _guard_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tell the connection guard a request is being served (no header deadline, not evictable);
    a body that does not arrive in time is a 408."""
    guard = request.app.get(GUARD)
    conn = guard.request_started(request.protocol) if guard is not None else None
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except _BodyTimeout:
        return _body_timeout(request)
    finally:
        ConnectionGuard.request_finished(conn)


def _mime(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


async def _read_limited(stream: Any, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds ``limit`` (chunked bodies have no length)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await stream.readany()
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)


# --- uploads -------------------------------------------------------------------------------------


def _reject_upload(stats: Stats, code: str, reason: str, status: int = 400) -> web.Response:
    stats.uploads_rejected += 1
    stats.upload_rejections[code] += 1
    return _error(status, reason)


async def handle_upload(request: web.Request) -> web.Response:
    """Raw 16-bit PCM from a sensor, as ``routes/esp32_routes.py`` takes it via ``request.data``."""
    state = request.app[STATE]
    stats = state.stats
    config = state.config
    headers = request.headers
    if _mime(request) != "application/octet-stream":
        return _reject_upload(
            stats, "content_type", "Content-Type must be application/octet-stream"
        )
    device_id = headers.get("X-Device-ID", "").strip()
    if not device_id:
        return _reject_upload(stats, "device_id", "missing X-Device-ID header")
    if len(device_id) > DEVICE_ID_MAX or not _DEVICE_ID_RE.fullmatch(device_id):
        return _reject_upload(
            stats,
            "device_id",
            f"invalid X-Device-ID: up to {DEVICE_ID_MAX} characters of A-Z a-z 0-9 . _ : -",
        )
    rate_text = headers.get("X-Sample-Rate")
    if rate_text is None:
        return _reject_upload(stats, "sample_rate", "missing X-Sample-Rate header")
    if not _DIGITS_RE.fullmatch(rate_text):
        return _reject_upload(stats, "sample_rate", "X-Sample-Rate is not an integer")
    sample_rate = int(rate_text)
    if sample_rate not in config.sample_rates:
        allowed = ", ".join(str(r) for r in config.sample_rates)
        return _reject_upload(
            stats, "sample_rate", f"unsupported X-Sample-Rate {sample_rate}; accepted: {allowed}"
        )
    sequence: int | None = None
    seq_text = headers.get("X-Sequence")
    if seq_text is not None:
        if not _DIGITS_RE.fullmatch(seq_text):
            return _reject_upload(stats, "sequence", "X-Sequence is not an integer")
        sequence = int(seq_text)
        if not 0 <= sequence < 2**63:
            return _reject_upload(stats, "sequence", "X-Sequence out of range")
    limit = config.max_upload_bytes
    too_large = f"body larger than {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        return _reject_upload(stats, "too_large", too_large, 413)
    body = await _body(request, _read_limited(request.content, limit))
    if body is None:
        return _reject_upload(stats, "too_large", too_large, 413)
    if not body:
        return _reject_upload(stats, "empty", "empty body")
    if len(body) % 2:
        return _reject_upload(
            stats, "odd_length", f"odd byte count {len(body)}: 16-bit PCM needs an even count"
        )
    digest = hashlib.sha256(body).hexdigest()
    upload = Upload(
        device_id=device_id,
        sequence=sequence,
        bytes=len(body),
        sha256=digest,
        sample_rate=sample_rate,
        content_type=headers.get("Content-Type", ""),
        received_at=time.time(),
        remote=request.remote,
    )
    try:
        stored = state.ledger.submit(upload)
        # Commit before answering: a 200 means the row is in the ledger (group commit).
        # --unsafe-ack-before-commit answers before the ledger has looked: as a new row,
        # neither a duplicate nor a conflict being known then
        answer = NEW if config.unsafe_ack_before_commit else await asyncio.wrap_future(stored)
    except LedgerClosed as exc:
        log.error("upload not stored: %s", exc)
        stats.uploads_unstored += 1
        return _error(503, "ledger unavailable; upload not stored")
    if answer.conflict:
        # The key is held with another body: new audio from a device that numbers from 0
        # again. A 200 "duplicate" here told it the audio was stored while it was dropped.
        stats.uploads_conflict += 1
        reason = (
            f"X-Sequence {sequence} of X-Device-ID {device_id} is already stored with a "
            "different body; this upload was not stored"
        )
        return web.json_response(
            {"error": reason, "status": "conflict", "device_id": device_id, "sequence": sequence},
            status=409,
        )
    if answer.duplicate:
        stats.uploads_duplicate += 1
        return web.json_response(
            {"status": "duplicate", "duplicate": True, "device_id": device_id, "sequence": sequence}
        )
    stats.uploads_accepted += 1
    stats.upload_bytes += len(body)
    return web.json_response(
        {
            "status": "ok",
            "duplicate": False,
            "device_id": device_id,
            "sequence": sequence,
            "bytes": len(body),
            "sha256": digest,
        }
    )


# --- analysis ------------------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


class _NotAFile(Exception):
    pass


async def _read_audio_field(request: web.Request, limit: int) -> bytes | None:
    """The ``audio`` file part (``request.files['audio']`` in Flask) or None when absent."""
    audio: bytes | None = None
    other_bytes = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):  # nested multipart: not something Flask reads
            await part.release()
            continue
        if part.name == "audio" and audio is None:
            if part.filename is None:  # Werkzeug puts such a part in request.form, not .files
                raise _NotAFile
            data = await _read_limited(_PartStream(part), limit)
            if data is None:
                raise _TooLarge
            audio = data
        else:
            data = await _read_limited(_PartStream(part), _MULTIPART_SLACK - other_bytes)
            if data is None:
                raise _TooLarge
            other_bytes += len(data)
    return audio


class _PartStream:
    """Adapts a multipart part to the ``readany()`` protocol of :func:`_read_limited`."""

    def __init__(self, part: BodyPartReader) -> None:
        self._part = part

    async def readany(self) -> bytes:
        return bytes(await self._part.read_chunk(_CHUNK))


async def handle_analyze(request: web.Request) -> web.Response:
    """Decode and score one clip in the analysis pool; queueing there is the saturation point."""
    state = request.app[STATE]
    stats = state.stats
    limit = state.config.max_upload_bytes
    received = time.perf_counter()
    if _mime(request) != "multipart/form-data":
        stats.analyses_rejected += 1
        return _error(400, "expected multipart/form-data with a file field 'audio'")
    if request.content_length is not None and request.content_length > limit + _MULTIPART_SLACK:
        stats.analyses_rejected += 1
        return _error(413, f"audio file larger than {limit} bytes")
    try:
        audio = await _body(request, _read_audio_field(request, limit))
    except _TooLarge:
        stats.analyses_rejected += 1
        return _error(413, f"audio file larger than {limit} bytes")
    except _NotAFile:
        stats.analyses_rejected += 1
        return _error(400, "field 'audio' is not a file upload (no filename)")
    except HttpProcessingError as exc:  # NUL or an over-long line in a part header
        stats.analyses_rejected += 1
        return _malformed(request, "malformed multipart part header", exc)
    except (ValueError, AssertionError, UnicodeError) as exc:
        stats.analyses_rejected += 1
        return _malformed(request, "malformed multipart body", exc)
    if audio is None:
        stats.analyses_rejected += 1
        return _error(400, "missing file field 'audio'")
    if not audio:
        stats.analyses_rejected += 1
        return _error(400, "audio file is empty")
    stats.analyses_in_flight += 1
    stats.analyses_in_flight_max = max(stats.analyses_in_flight_max, stats.analyses_in_flight)
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(
            state.analysis_pool, analyze_bytes, audio, state.profile, state.config.extra_cost_ms
        )
    except AudioRejected as exc:
        stats.analyses_rejected += 1
        return _error(400, str(exc))
    except BrokenProcessPool:
        log.error("analysis pool is broken (a worker died)")
        return _error(503, "analysis workers unavailable")
    except Exception:
        log.exception("analysis failed")
        return _error(500, "analysis failed")
    finally:
        stats.analyses_in_flight -= 1
    stats.analyses_ok += 1
    server_ms = (time.perf_counter() - received) * 1000.0
    result["server_ms"] = round(server_ms, 2)
    result["queue_ms"] = round(max(0.0, server_ms - result["processing_ms"]), 2)
    return web.json_response(result)


# --- auth ----------------------------------------------------------------------------------------


async def _credentials(request: web.Request) -> tuple[str, Secret] | web.Response:
    mime = _mime(request)
    if request.content_length is not None and request.content_length > _FORM_LIMIT:
        return _error(413, "login body too large")
    data: Any
    try:
        if mime in ("application/x-www-form-urlencoded", "multipart/form-data"):
            data = await _body(request, request.post())
        else:  # JSON, also when a client forgot the Content-Type
            data = await _body(request, request.json())
    except HttpProcessingError as exc:  # a bad multipart part header
        return _malformed(request, "malformed form body", exc)
    except RecursionError as exc:  # JSON nested deeper than the decoder's stack
        return _malformed(request, "JSON body nested too deeply", exc)
    except (ValueError, UnicodeError):
        return _error(400, "body must be JSON or form-encoded with username and password")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "login body too large")
    if not hasattr(data, "get"):
        return _error(400, "body must be a JSON object with username and password")
    username = data.get("username") or data.get("email")
    password = data.get("password")
    if not isinstance(username, str) or not username.strip():
        return _error(400, "missing username")
    if not isinstance(password, str) or not password:
        return _error(400, "missing password")
    return username.strip(), Secret(password)


async def handle_login(request: web.Request) -> web.Response:
    """Check the password off the loop (scrypt is slow by design) and set a signed cookie."""
    state = request.app[STATE]
    stats = state.stats
    creds = await _credentials(request)
    if isinstance(creds, web.Response):
        stats.logins_failed += 1
        return creds
    username, password = creds
    stats.logins_in_flight += 1
    try:
        ok = await asyncio.get_running_loop().run_in_executor(
            state.hash_pool, state.users.authenticate, username, password
        )
    finally:
        stats.logins_in_flight -= 1
    if not ok:
        stats.logins_failed += 1
        return _error(401, "invalid username or password")
    stamp = state.users.session_stamp(username)
    if stamp is None:  # deleted while its password was being checked
        stats.logins_failed += 1
        return _error(401, "invalid username or password")
    stats.logins_ok += 1
    token, expires = state.signer.issue(username, stamp)
    response = web.json_response({"status": "ok", "username": username, "expires_at": expires})
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(1, math.ceil(state.signer.ttl_s)),
        path="/",
        httponly=True,
        samesite="Lax",
    )
    return response


def _session(state: ServerState, request: web.Request) -> Session:
    """The request's valid, unrevoked session, or :class:`InvalidSession`."""
    session = state.signer.verify(
        request.cookies.get(SESSION_COOKIE), stamp_of=state.users.session_stamp
    )
    if state.users.is_revoked(session.sid):
        raise InvalidSession("session revoked (logged out)")
    return session


async def handle_verify(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        session = _session(state, request)
    except InvalidSession as exc:
        state.stats.verifies_failed += 1
        return web.json_response({"valid": False, "error": str(exc)}, status=401)
    state.stats.verifies_ok += 1
    return web.json_response(
        {"valid": True, "username": session.username, "expires_at": session.expires}
    )


async def handle_logout(request: web.Request) -> web.Response:
    """Clear the cookie and revoke the token server-side, so a copy of it stops working too."""
    state = request.app[STATE]
    state.stats.logouts += 1
    try:
        session = _session(state, request)
    except InvalidSession:
        pass  # nothing to revoke; logging out is idempotent
    else:
        await asyncio.get_running_loop().run_in_executor(
            state.hash_pool, state.users.revoke, session.sid, session.expires
        )
    response = web.json_response({"status": "ok"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# --- health and stats ----------------------------------------------------------------------------


async def handle_health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "status": "ok",
            "uptime_s": round(time.time() - state.started_at, 3),
            "analysis_workers": state.config.analysis_workers,
            "profile_source": state.profile.source,
            "pid": os.getpid(),
        }
    )


def stats_snapshot(state: ServerState) -> dict[str, Any]:
    """Counters plus derived gauges. Queue depth is inferred: requests in the pool beyond the
    worker count are waiting for a worker."""
    s = state.stats
    return {
        "uptime_s": round(time.time() - state.started_at, 3),
        "uploads_accepted": s.uploads_accepted,
        "uploads_rejected": s.uploads_rejected,
        "uploads_duplicate": s.uploads_duplicate,
        "uploads_conflict": s.uploads_conflict,
        "uploads_unstored": s.uploads_unstored,
        "upload_rejections": dict(s.upload_rejections),
        "upload_bytes": s.upload_bytes,
        "ledger_written": state.ledger.written,
        "ledger_pending": state.ledger.pending,
        "ledger_commits": state.ledger.commits,
        "analyses_ok": s.analyses_ok,
        "analyses_rejected": s.analyses_rejected,
        "analyses_in_flight": s.analyses_in_flight,
        "analyses_in_flight_max": s.analyses_in_flight_max,
        "analysis_workers": state.config.analysis_workers,
        "analysis_queue_depth": max(0, s.analyses_in_flight - state.config.analysis_workers),
        "logins_ok": s.logins_ok,
        "logins_failed": s.logins_failed,
        "logins_in_flight": s.logins_in_flight,
        "verifies_ok": s.verifies_ok,
        "verifies_failed": s.verifies_failed,
        "logouts": s.logouts,
        "body_timeouts": s.body_timeouts,
        **connection_stats(state),
    }


def connection_stats(state: ServerState) -> dict[str, Any]:
    guard = state.guard
    if guard is None:
        return {}
    return {
        "connections_open": guard.stats["open"],
        "connections_max": guard.max_connections,
        "connections_refused": guard.stats["refused"],
        "connections_evicted": guard.stats["evicted"],
        "header_timeouts": guard.stats["header_timeouts"],
    }


async def handle_stats(request: web.Request) -> web.Response:
    return web.json_response(stats_snapshot(request.app[STATE]))


# --- assembly ------------------------------------------------------------------------------------


def create_app(
    config: ServerConfig, *, analysis_executor: ExecutorFactory = process_pool
) -> web.Application:
    """The application; resources open on startup and close (ledger flushed) on cleanup.

    ``analysis_executor`` builds the analysis pool; tests may pass a thread pool factory to skip
    spawning processes where the pool itself is not under test.
    """
    app = web.Application(
        client_max_size=max(config.max_upload_bytes, _FORM_LIMIT) + _CHUNK,
        middlewares=[_guard_requests, _one_line_errors],
    )
    app.router.add_get(HEALTH_PATH, handle_health)
    app.router.add_get(STATS_PATH, handle_stats)
    app.router.add_post(UPLOAD_PATH, handle_upload)
    app.router.add_post(ANALYZE_PATH, handle_analyze)
    app.router.add_post(LOGIN_PATH, handle_login)
    app.router.add_get(VERIFY_PATH, handle_verify)
    app.router.add_post(LOGOUT_PATH, handle_logout)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        profile = await loop.run_in_executor(None, default_profile, config.profile_seed)
        key = load_or_create_key(config.data_dir, config.secret_key_file)
        ledger = Ledger(config.ledger_path)
        users = UserStore(config.users_path)
        pool = analysis_executor(config)
        hash_pool = ThreadPoolExecutor(max(2, os.cpu_count() or 1), thread_name_prefix="scrypt")
        app[STATE] = ServerState(
            config=config,
            profile=profile,
            ledger=ledger,
            users=users,
            signer=SessionSigner(key, config.session_ttl_s),
            analysis_pool=pool,
            hash_pool=hash_pool,
            guard=app.get(GUARD),
        )
        try:
            # READY must mean the workers are up, not that the first request pays their start.
            pings = [
                loop.run_in_executor(pool, worker_ping) for _ in range(config.analysis_workers)
            ]
            await asyncio.gather(*pings)
            yield
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            hash_pool.shutdown(wait=True, cancel_futures=True)
            try:
                ledger.close()
            except RuntimeError as exc:  # the writer died (disk full...): say so in one line
                raise ScfleetError(f"{config.ledger_path}: {exc}") from None
            finally:
                users.close()

    app.cleanup_ctx.append(lifecycle)
    return app
