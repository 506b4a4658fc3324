"""MicroPython's REPL on an emulated board, so ``hw deploy`` (and mpremote-style tools) are
tested end to end without hardware.

When the flashed app returns (the firmware's ``exit`` command), crashes, or the board has no app,
the board serves what MicroPython serves after ``main.py``: the friendly REPL (banner, ``>>> ``,
echo, Ctrl-A/B/C/D/E) and the raw REPL with raw-paste mode, byte for byte as ``shared/pyexec.c``
does it (``raw REPL; CTRL-B to exit\\r\\n>``; ``OK``, output, ``\\x04``, error text, ``\\x04``,
``>``; raw-paste: ``R\\x01``, the 2-byte window = stdin buffer / 2, then ``\\x01`` per window
consumed; Ctrl-D on an empty raw line = soft reset that skips ``main.py``).

**This is not a MicroPython interpreter.** Received code runs under CPython's ``exec`` in a small
sandbox: ``print``, ``open`` and the modules ``os``/``uos`` (listdir, ilistdir, stat, mkdir,
rmdir, remove, rename, getcwd), ``hashlib`` (sha256/sha1 with ``update``/``digest`` only, as on a
board), ``binascii``, ``json``, ``gc``, ``time``, ``sys`` and ``micropython`` act on the board's
LittleFS files — a MicroPython-compatible subset for file operations. Every file change is built
back into the emulated flash at once (so it survives a reset); empty directories do not persist.
Code runs to completion on the emulator's thread: send no endless loops.
"""

from __future__ import annotations

import binascii
import builtins
import codeop
import errno
import hashlib
import io
import json
import posixpath
import time
import traceback
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

MICROPYTHON_BANNER = "MicroPython v1.26.0 on 2025-08-09; Generic ESP32 module with ESP32"
CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
HELP_LINE = 'Type "help()" for more information.'


@dataclass
class ReplOptions:
    """How the emulated REPL behaves (``EmulatedBoard.repl``), plus counters for tests."""

    raw_paste: bool = True  # False: answer raw-paste requests with "R\x00" (as firmware without it)
    stdin_buffer: int = 256  # MICROPY_REPL_STDIN_BUFFER_MAX; the raw-paste window is half of it
    stall_after_execs: int | None = None  # fault: stop answering at this many executions
    execs: int = 0
    raw_paste_execs: int = 0
    stalled: bool = False


class MountedVfs(Protocol):
    """The board's LittleFS as mounted at boot (``board.BoardFiles``)."""

    @property
    def files(self) -> Mapping[str, bytes]: ...

    @property
    def vfs_offset(self) -> int: ...

    @property
    def block_count(self) -> int: ...


class ReplUart(Protocol):
    """The board's UART as the REPL uses it (``board.SerialPort``)."""

    def write(self, data: bytes) -> None: ...

    async def read(self, n: int = -1) -> bytes: ...


class ReplBoard(Protocol):
    """What the REPL needs of the board it runs on (``board.EmulatedBoard``), so this module
    never imports the board: its flash (file changes are rebuilt into it), the REPL's options
    and counters, mounting the LittleFS, and a line in the board's history."""

    flash: bytearray
    repl: ReplOptions

    def mount_vfs(self) -> MountedVfs | None: ...

    def log_event(self, text: str) -> None: ...


class SoftReset(NamedTuple):
    """The REPL ended in a soft reset; ``run_main``: friendly Ctrl-D (raw Ctrl-D skips main.py)."""

    run_main: bool


# --------------------------------------------------------------------------- the filesystem


class BoardFs:
    """The board's LittleFS as the sandbox sees it; each change is rebuilt into the flash."""

    def __init__(self, board: ReplBoard, files: MountedVfs) -> None:
        self._board = board
        self._offset = files.vfs_offset
        self._size = files.block_count * 4096
        self.files: dict[str, bytes] = dict(files.files)
        self.dirs: set[str] = {"/"}
        for path in self.files:
            self._add_parents(path)

    def _add_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in self.dirs:
            self.dirs.add(parent)
            parent = posixpath.dirname(parent)

    @staticmethod
    def norm(path: object) -> str:
        if isinstance(path, bytes):
            path = path.decode()
        if not isinstance(path, str):
            raise TypeError("path must be str")
        return posixpath.normpath(posixpath.join("/", path)).replace("//", "/")

    def commit(self) -> None:
        from hw_bridge import fsimage

        try:
            image = fsimage.build_image(self.files, size=self._size)
        except fsimage.FsImageError:
            raise _oserror(errno.ENOSPC) from None
        self._board.flash[self._offset : self._offset + self._size] = image

    def kind(self, path: str) -> str | None:
        if path in self.files:
            return "file"
        if path in self.dirs:
            return "dir"
        return None

    def children(self, path: str) -> list[str]:
        if self.kind(path) != "dir":
            raise _oserror(errno.ENOENT)
        entries = (*self.files, *self.dirs)
        return sorted(
            {posixpath.basename(p) for p in entries if p != "/" and posixpath.dirname(p) == path}
        )


def _oserror(code: int) -> OSError:
    """MicroPython's style: ``OSError: [Errno 2] ENOENT``."""
    return OSError(code, errno.errorcode.get(code, str(code)))


class _File:
    """A file on the emulated LittleFS; written back on close, as LittleFS commits on close.

    Not an ``io`` subclass on purpose: those close (and so would commit) when garbage-collected,
    while an unclosed LittleFS file is never committed.
    """

    def __init__(self, fs: BoardFs, path: str, mode: str) -> None:
        self.closed = False
        self._fs, self._path, self._mode = fs, path, mode
        self._text = "b" not in mode
        kind = fs.kind(path)
        if kind == "dir":
            raise _oserror(errno.EISDIR)
        if "r" in mode:
            if kind is None:
                raise _oserror(errno.ENOENT)
            self._buf = io.BytesIO(fs.files[path])
        else:
            if posixpath.dirname(path) not in fs.dirs:
                raise _oserror(errno.ENOENT)
            start = fs.files.get(path, b"") if "a" in mode else b""
            self._buf = io.BytesIO(start)
            self._buf.seek(0, io.SEEK_END)
            fs.files[path] = start

    def read(self, n: int = -1) -> Any:
        data = self._buf.read(n)
        return data.decode() if self._text else data

    def readline(self, size: int | None = -1) -> Any:
        data = self._buf.readline(-1 if size is None else size)
        return data.decode() if self._text else data

    def write(self, data: Any) -> int:
        if self.closed or "r" in self._mode:
            raise _oserror(errno.EBADF)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        self._buf.write(raw)
        return len(data)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._buf.seek(pos, whence)

    def tell(self) -> int:
        return self._buf.tell()

    def close(self) -> None:
        if not self.closed and "r" not in self._mode:
            self._fs.files[self._path] = self._buf.getvalue()
            self._fs.commit()
        self.closed = True

    def flush(self) -> None:
        pass

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        return iter(self.readline, "" if self._text else b"")


class _Hash:
    """hashlib objects as MicroPython has them: ``update`` and ``digest``, no ``hexdigest``."""

    def __init__(self, name: str, data: bytes = b"") -> None:
        self._h = hashlib.new(name, data)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


def _sandbox(fs: BoardFs, out: Callable[[str], None]) -> dict[str, Any]:
    """Globals for received code: builtins, plus file access redirected to ``fs``."""

    def mp_print(*args: Any, sep: str = " ", end: str = "\n", file: Any = None) -> None:
        text = sep.join(str(a) for a in args) + end
        (file.write if file is not None else out)(text)

    def mp_open(path: Any, mode: str = "r", *_: Any) -> _File:
        return _File(fs, fs.norm(path), mode)

    def stat(path: Any) -> tuple[int, ...]:
        p = fs.norm(path)
        kind = fs.kind(p)
        if kind is None:
            raise _oserror(errno.ENOENT)
        size = len(fs.files[p]) if kind == "file" else 0
        return (0x8000 if kind == "file" else 0x4000, 0, 0, 0, 0, 0, size, 0, 0, 0)

    def listdir(path: Any = "/") -> list[str]:
        return fs.children(fs.norm(path))

    def ilistdir(path: Any = "/") -> Any:
        p = fs.norm(path)
        for name in fs.children(p):
            st = stat(posixpath.join(p, name))
            yield (name, st[0], 0, st[6])

    def mkdir(path: Any) -> None:
        p = fs.norm(path)
        if fs.kind(p) is not None:
            raise _oserror(errno.EEXIST)
        if posixpath.dirname(p) not in fs.dirs:
            raise _oserror(errno.ENOENT)
        fs.dirs.add(p)

    def remove(path: Any) -> None:
        p = fs.norm(path)
        if fs.kind(p) != "file":
            raise _oserror(errno.ENOENT if fs.kind(p) is None else errno.EISDIR)
        del fs.files[p]
        fs.commit()

    def rmdir(path: Any) -> None:
        p = fs.norm(path)
        if fs.kind(p) != "dir" or p == "/":
            raise _oserror(errno.ENOENT if fs.kind(p) is None else errno.EINVAL)
        if fs.children(p):
            raise _oserror(errno.ENOTEMPTY)
        fs.dirs.discard(p)

    def rename(old: Any, new: Any) -> None:
        a, b = fs.norm(old), fs.norm(new)
        if fs.kind(a) != "file":  # directories: not needed by deploy tools
            raise _oserror(errno.ENOENT if fs.kind(a) is None else errno.EINVAL)
        if fs.kind(b) == "dir" or posixpath.dirname(b) not in fs.dirs:
            raise _oserror(errno.EISDIR if fs.kind(b) == "dir" else errno.ENOENT)
        fs.files[b] = fs.files.pop(a)  # LittleFS replaces an existing file
        fs.commit()

    os_mod = types.ModuleType("os")
    for fn in (stat, listdir, ilistdir, mkdir, remove, rmdir, rename):
        setattr(os_mod, fn.__name__, fn)
    os_mod.getcwd = lambda: "/"  # type: ignore[attr-defined]
    os_mod.sep = "/"  # type: ignore[attr-defined]
    hashlib_mod = types.ModuleType("hashlib")
    hashlib_mod.sha256 = lambda data=b"": _Hash("sha256", data)  # type: ignore[attr-defined]
    hashlib_mod.sha1 = lambda data=b"": _Hash("sha1", data)  # type: ignore[attr-defined]
    sys_mod = types.ModuleType("sys")
    sys_mod.stdout = types.SimpleNamespace(write=out)  # type: ignore[attr-defined]
    sys_mod.platform = "esp32"  # type: ignore[attr-defined]
    sys_mod.implementation = types.SimpleNamespace(  # type: ignore[attr-defined]
        name="micropython", version=(1, 26, 0, "")
    )
    gc_mod = types.ModuleType("gc")
    gc_mod.collect = lambda: None  # type: ignore[attr-defined]
    gc_mod.mem_free = lambda: 100_000  # type: ignore[attr-defined]
    mp_mod = types.ModuleType("micropython")
    mp_mod.kbd_intr = lambda c: None  # type: ignore[attr-defined]
    modules: dict[str, Any] = {
        "os": os_mod,
        "uos": os_mod,
        "hashlib": hashlib_mod,
        "uhashlib": hashlib_mod,
        "binascii": binascii,
        "ubinascii": binascii,
        "json": json,
        "time": time,
        "sys": sys_mod,
        "gc": gc_mod,
        "micropython": mp_mod,
    }

    def mp_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name in modules:
            return modules[name]
        raise ImportError(f"no module named '{name}'")

    b = dict(vars(builtins))
    b.update(print=mp_print, open=mp_open, __import__=mp_import)
    return {"__builtins__": b, "__name__": "__main__"}


def _traceback(exc: BaseException) -> str:
    """The exception as MicroPython prints it (frames from the received code only)."""
    lines = ["Traceback (most recent call last):"]
    if isinstance(exc, SyntaxError):
        lines.append(f'  File "<stdin>", line {exc.lineno or 1}')
        lines.append(f"SyntaxError: {exc.msg}")
    else:
        for fr in traceback.extract_tb(exc.__traceback__):
            if fr.filename == "<stdin>":
                lines.append(f'  File "<stdin>", line {fr.lineno}, in {fr.name}')
        text = str(exc)
        lines.append(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
    return "\r\n".join(lines) + "\r\n"


# --------------------------------------------------------------------------- the REPL


class MicroPythonRepl:
    """One REPL session on the board's UART; :meth:`run` returns at a soft reset."""

    def __init__(self, board: ReplBoard, serial: ReplUart, *, raw: bool = False) -> None:
        self.board = board
        self.serial = serial
        self.opts: ReplOptions = board.repl
        self.raw = raw
        self._pending = b""
        self._pos = 0
        self._globals: dict[str, Any] | None = None
        self._fs: BoardFs | None = None
        self._out: list[str] = []
        self._exited = False

    def _write(self, data: bytes | str) -> None:
        self.serial.write(data.encode() if isinstance(data, str) else data)

    async def _getc(self) -> int | None:
        if self._pos >= len(self._pending):
            data = await self.serial.read(4096)
            if not data:
                return None
            self._pending, self._pos = data, 0
        c = self._pending[self._pos]
        self._pos += 1
        return c

    def _namespace(self) -> dict[str, Any]:
        """Globals persist within a session, like the REPL's; the files are mounted on first use."""
        if self._globals is None:
            files = self.board.mount_vfs()
            assert files is not None
            self._fs = BoardFs(self.board, files)
            self._globals = _sandbox(self._fs, lambda s: self._out.append(s))
        return self._globals

    def execute(self, source: str, mode: str = "exec") -> tuple[str, str]:
        """(output, error text) of running ``source``; ``mode="single"`` echoes expressions."""
        self._out = []
        self._exited = False
        ns = self._namespace()
        err = ""
        try:
            if mode == "single":
                try:
                    code = compile(source, "<stdin>", "eval")
                except SyntaxError:
                    exec(compile(source, "<stdin>", "exec"), ns)
                else:
                    value = eval(code, ns)
                    if value is not None:
                        self._out.append(repr(value) + "\n")
            else:
                exec(compile(source, "<stdin>", "exec"), ns)
        except SystemExit:
            self._exited = True
        except BaseException as exc:  # noqa: BLE001 - the board prints it and carries on
            err = _traceback(exc)
        out = "".join(self._out).replace("\r\n", "\n").replace("\n", "\r\n")
        return out, err

    async def run(self) -> SoftReset | None:
        """Serve until a soft reset (returned) or the UART closes (``None``)."""
        if self.raw:
            self._write(RAW_BANNER)
        else:
            self._write(self.banner())
        while True:
            result = await (self._raw() if self.raw else self._friendly())
            if isinstance(result, SoftReset) or result is None:
                return result

    def banner(self) -> str:
        return f"{MICROPYTHON_BANNER}\r\n{HELP_LINE}\r\n"

    async def _stall(self) -> None:
        self.opts.stalled = True
        self.board.log_event("repl: stopped answering (fault)")
        while await self._getc() is not None:
            pass

    def _stalls_now(self) -> bool:
        limit = self.opts.stall_after_execs
        return limit is not None and self.opts.execs >= limit

    # --- raw REPL -------------------------------------------------------------------------------
    async def _raw(self) -> SoftReset | bool | None:
        """One raw-REPL command; ``False`` when switched to the friendly REPL."""
        self._write(b">")
        line = bytearray()
        while True:
            c = await self._getc()
            if c is None:
                return None
            if c == CTRL_A:
                if len(line) == 2 and line[0] == CTRL_E:
                    if self._stalls_now():
                        await self._stall()
                        return None
                    if line[1] != ord("A") or not self.opts.raw_paste:
                        self._write(b"R\x00")  # raw-paste not supported: stay in raw REPL
                        return True
                    return await self._raw_paste()
                self._write(RAW_BANNER)
                return True
            if c == CTRL_B:
                self._write(b"\r\n")
                self.raw = False
                self._write(self.banner())
                return False
            if c == CTRL_C:
                line.clear()
            elif c == CTRL_D:
                break
            else:
                line.append(c)
        if self._stalls_now():
            await self._stall()
            return None
        self._write(b"OK")
        if not line:
            self._write(b"\r\n")
            return SoftReset(run_main=False)
        return self._exec_and_report(bytes(line))

    def _exec_and_report(self, source: bytes) -> SoftReset | bool:
        """Run a raw command; ``sys.exit()`` in it soft-resets, as MicroPython's raw REPL does."""
        self.opts.execs += 1
        out, err = self.execute(source.decode("utf-8", "replace"))
        self._write(out.encode() + b"\x04" + err.encode() + b"\x04")
        return SoftReset(run_main=False) if self._exited else True

    async def _raw_paste(self) -> SoftReset | bool | None:
        window = self.opts.stdin_buffer // 2
        self._write(b"R\x01" + window.to_bytes(2, "little") + b"\x01")
        remain = window
        source = bytearray()
        interrupted = False
        while True:
            c = await self._getc()
            if c is None:
                return None
            if c in (CTRL_C, CTRL_D):
                self._write(b"\x04")  # end of data acknowledged
                interrupted = c == CTRL_C
                break
            source.append(c)
            remain -= 1
            if remain == 0:
                self._write(b"\x01")
                remain = window
        self.opts.raw_paste_execs += 1
        if interrupted:
            self.opts.execs += 1
            self._write(b"\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04")
            return True
        return self._exec_and_report(bytes(source))

    # --- friendly REPL --------------------------------------------------------------------------
    async def _friendly(self) -> SoftReset | bool | None:
        """One friendly-REPL input; ``False`` when switched to the raw REPL."""
        prompt = ">>> "
        self._write(prompt)
        source = ""
        line = bytearray()
        last = 0
        while True:
            c = await self._getc()
            if c is None:
                return None
            if c == CTRL_A and not source:
                self._write(b"\r\n")
                self.raw = True
                self._write(RAW_BANNER)
                return False
            if c == CTRL_B and not source:
                self._write(b"\r\n" + self.banner().encode())
                return True
            if c == CTRL_C:
                self._write(b"\r\n")
                return True
            if c == CTRL_D:
                if source:
                    break
                if not line:
                    self._write(b"\r\n")
                    return SoftReset(run_main=True)
                continue
            if c == CTRL_E and not source:
                return await self._paste_mode()
            if c in (8, 127):
                if line:
                    line.pop()
                    self._write(b"\x08 \x08")
                continue
            if c in (13, 10):
                if c == 10 and last == 13:
                    last = c
                    continue
                last = c
                self._write(b"\r\n")
                source += line.decode("utf-8", "replace") + "\n"
                line.clear()
                try:
                    complete = codeop.compile_command(source, "<stdin>", "single") is not None
                except (SyntaxError, ValueError, OverflowError):
                    complete = True  # let execute() report it
                if complete:
                    break
                self._write(b"... ")
                continue
            last = c
            line.append(c)
            self._write(bytes([c]))
        if source.strip():
            self.opts.execs += 1
            out, err = self.execute(source, "single")
            self._write(out + err)
        return True

    async def _paste_mode(self) -> bool | None:
        self._write(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        source = bytearray()
        while True:
            c = await self._getc()
            if c is None:
                return None
            if c == CTRL_C:
                self._write(b"\r\n")
                return True
            if c == CTRL_D:
                self._write(b"\r\n")
                break
            source.append(c)
            self._write(b"\r\n=== " if c == 13 else bytes([c]))
        self.opts.execs += 1
        out, err = self.execute(source.decode("utf-8", "replace").replace("\r", "\n"))
        self._write(out + err)
        return True


__all__ = [
    "MICROPYTHON_BANNER",
    "BoardFs",
    "MicroPythonRepl",
    "MountedVfs",
    "ReplBoard",
    "ReplOptions",
    "ReplUart",
    "SoftReset",
]
