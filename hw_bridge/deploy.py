"""``scfleet hw deploy``: copy only the changed app files onto boards over the raw REPL.

The quick path while iterating on the firmware (``hw flash`` rewrites everything through the ROM
loader). Per board: the running app is asked to ``exit`` (it ignores Ctrl-C, see
``firmware/PROTOCOL.md``), the raw REPL is entered, the board hashes the files it holds
(sha256, or the size on firmware without ``hashlib``), only files that differ are written
(raw-paste mode when the board supports it), written files are hashed again, and the board
leaves the raw REPL and soft-resets so ``main.py`` starts the new app. With the scfw app, the
``hello`` it prints at boot confirms it runs and names its version.

``/scfw_config.json`` holds the board's Wi-Fi key: deploy never reads it (not even its hash)
and never writes it unless ``--overwrite-config`` is given. Boards are deployed in parallel
(one thread each: unlike esptool, nothing here is process-global).
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hw_bridge.boardconfig import CONFIG_PATH
from scfleet_core.errors import HardwareError

APP_MARKERS = ("/scfw/app.py", "/scfw/app.mpy")  # the scfw app, which says hello at boot
VERSION_CODE = "import sys\nprint('%d.%d.%d' % sys.implementation.version[:3])\n"


@dataclass
class DeployResult:
    port: str
    ok: bool = False
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_written: int = 0
    raw_paste: bool | None = None  # None: nothing was executed
    compared: str = "sha256"  # or "size" on firmware without hashlib
    fw: str | None = None  # the app's version from its hello after the reset
    micropython: str | None = None  # the board's MicroPython version (when shipping .mpy)
    seconds: float = 0.0
    error: str = ""


def _open(url: str, baud: int) -> Any:
    import serial

    try:
        ser = serial.serial_for_url(url, do_not_open=True, timeout=0.05)
        ser.baudrate = baud
        ser.dtr = False  # released: opening must not reset the board (see link.py)
        ser.rts = False
        ser.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HardwareError(f"{url}: cannot open ({text})") from None
    return ser


def _parents(paths: list[str]) -> list[str]:
    dirs: set[str] = set()
    for p in paths:
        d = posixpath.dirname(p)
        while d not in ("/", ""):
            dirs.add(d)
            d = posixpath.dirname(d)
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _matches(digest: str | None, data: bytes) -> bool:
    if digest is None:
        return False
    if digest.startswith("h:"):
        return digest[2:] == hashlib.sha256(data).hexdigest()
    return digest == f"s:{len(data)}"


def _wait_hello(ser: Any, timeout: float) -> str:
    """The ``fw`` of the first ``hello`` line the app prints after booting."""
    from hw_bridge.link import decode_line

    deadline = time.monotonic() + timeout
    buf = bytearray()
    while time.monotonic() < deadline:
        buf += ser.read(256)
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf = bytearray(rest)
            msg = decode_line(line)
            if isinstance(msg, dict) and msg.get("t") == "hello":
                return str(msg.get("fw"))
            if isinstance(msg, str) and msg.startswith("Traceback"):
                raise HardwareError("the app crashed at boot (see `scfleet hw monitor`)")
    raise HardwareError(f"no hello from the app within {timeout:g} s after the soft reset")


def deploy_board(
    url: str,
    files: Mapping[str, bytes],
    *,
    baud: int = 115200,
    timeout: float = 5.0,
    raw_paste: bool = True,
    force: bool = False,
    reset: bool = True,
    py: bool = True,
) -> DeployResult:
    """Deploy ``files`` (board path -> bytes) to one board; errors end up in ``result.error``.

    ``py=False``: the board's ``scfw/*.py`` go as ``.mpy``, compiled (mpy-cross) for the
    MicroPython version the board reports; the other form of each module is removed."""
    from hw_bridge import repl

    result = DeployResult(port=url)
    t0 = time.monotonic()
    stage = "opening"
    ser = None
    try:
        ser = _open(url, baud)
        stage = "stopping the app"
        repl.stop_app(ser, min(timeout, 2.0))
        stage = "entering the raw REPL"
        repl.enter_raw_repl(ser, timeout)
        if not py:
            from hw_bridge import mpyc

            stage = "reading the board's MicroPython version"
            out, raw_paste = repl.exec_raw(ser, VERSION_CODE, timeout, raw_paste=raw_paste)
            result.micropython = out.decode(errors="replace").strip()
            stage = "compiling the app (mpy-cross)"
            files = _compiled(files, mpyc.parse_version(result.micropython))
        paths = sorted(files)
        stale = sorted({_other(p) for p in paths if p.startswith("/scfw/")} - set(paths) - {""})
        stage = "hashing the files on the board"
        # The other form's paths are hashed too, only to learn whether they exist.
        found, raw_paste = repl.file_digests(ser, paths + stale, timeout, raw_paste=raw_paste)
        result.raw_paste = raw_paste
        stale = [p for p in stale if found[p] is not None]
        if force:
            digests: dict[str, str | None] = dict.fromkeys(paths)
        else:
            digests = {p: found[p] for p in paths}
            if any(v and v.startswith("s:") for v in digests.values()):
                result.compared = "size"
        changed = [p for p in paths if not _matches(digests[p], files[p])]
        result.unchanged = [p for p in paths if p not in changed]
        if changed:
            stage = "creating directories"
            repl.make_dirs(ser, _parents(changed), timeout, raw_paste=raw_paste)
        for path in changed:
            stage = f"writing {path}"
            raw_paste = repl.write_file(ser, path, files[path], timeout, raw_paste=raw_paste)
            result.raw_paste = raw_paste
            result.written.append(path)
            result.bytes_written += len(files[path])
        if changed:
            stage = "verifying"
            after, _ = repl.file_digests(ser, changed, timeout, raw_paste=raw_paste)
            bad = [p for p in changed if not _matches(after[p], files[p])]
            if bad:
                raise HardwareError(f"{len(bad)} files differ after writing: {', '.join(bad)}")
        if stale:  # /scfw/x.py would shadow a new /scfw/x.mpy on import
            stage = "removing the other form of the modules"
            code = "import os\nfor p in %r:\n try:\n  os.remove(p)\n except OSError:\n  pass\n"
            repl.exec_raw(ser, code % (stale,), timeout, raw_paste=raw_paste)
        stage = "leaving the raw REPL"
        repl.leave_raw_repl(ser, timeout)
        if reset:
            stage = "soft reset"
            repl.soft_reset(ser, timeout)
            if any(m in files for m in APP_MARKERS):
                stage = "waiting for the app"
                result.fw = _wait_hello(ser, max(timeout, 5.0))
        result.ok = True
    except repl.ReplExecError as exc:
        result.error = f"{url}: {stage}: the board raised {exc}"
    except repl.ReplError as exc:
        result.error = f"{url}: {stage}: {exc}"
    except HardwareError as exc:
        text = str(exc)
        result.error = text if text.startswith(url) else f"{url}: {stage}: {text}"
    except OSError as exc:  # the port went away under us
        result.error = f"{url}: {stage}: port error ({exc.strerror or exc})"
    finally:
        if ser is not None:
            with contextlib.suppress(Exception):  # a dead port may fail to close
                ser.close()
        result.seconds = time.monotonic() - t0
    return result


_compile_lock = threading.Lock()
_compile_cache: dict[tuple[tuple[str, bytes], ...], dict[str, bytes]] = {}


def _compiled(files: Mapping[str, bytes], version: tuple[int, int, int]) -> dict[str, bytes]:
    """The app as .mpy for ``version``, compiled once per version for all boards."""
    from hw_bridge import mpyc

    key = (("v", ".".join(map(str, version)).encode()), *sorted(files.items()))
    with _compile_lock:
        if key not in _compile_cache:
            _compile_cache[key] = mpyc.compile_app(dict(files), version)
        return _compile_cache[key]


def _other(path: str) -> str:
    if path.endswith(".py") or path.endswith(".mpy"):
        from hw_bridge import mpyc

        return mpyc.other_form(path)
    return ""


def deploy_boards(
    urls: list[str], files: Mapping[str, bytes], **options: Any
) -> list[DeployResult]:
    """:func:`deploy_board` on every port at once; results in port order."""
    with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
        return list(pool.map(lambda u: deploy_board(u, files, **options), urls))


__all__ = ["APP_MARKERS", "CONFIG_PATH", "DeployResult", "deploy_board", "deploy_boards"]
