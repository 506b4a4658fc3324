"""Emulated boards that boot into the real firmware app (issue 5's board emulator).

ROM's :class:`~hw_bridge.emulator.board.EmulatedBoard` mounts the LittleFS it finds in flash at
boot and hands the files to an ``app_runner``. :class:`FirmwareAppRunner` is that runner for our
firmware: it imports the ``scfw`` package *from the flashed files* (so a board flashed with an
older app runs the older app), gives it CPython's :class:`HostHal` with the flashed files as its
filesystem — a persisted ``config`` is written back into the board's flash, so it survives a
reset like on a real board — and runs ``app.run(hal, serial)``. The app sends real HTTP.

:func:`start_app_boards` makes N "factory-flashed" boards (an ESP image header at 0x1000 and
the app's LittleFS at the vfs offset, as ``scfleet hw flash`` would leave them) that boot
straight into the app, with ``socket://`` or ``rfc2217://`` endpoints on 127.0.0.1. All of
them share the emulator's own event loop thread, off the load generator's loop.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import importlib
import importlib.util
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from hw_bridge.emulator.board import (
    APP_OFFSET,
    BoardFiles,
    EmulatedBoard,
    SerialPort,
    default_app_runner,
)
from hw_bridge.emulator.server import EmulatedBoards, EmulatorServer, start_boards

APP_MODULES = ("/scfw/app.py", "/scfw/app.mpy")
_load_lock = threading.Lock()
_loaded: dict[str, tuple[ModuleType, ModuleType]] = {}
_image_cache: dict[tuple[str, int], bytes] = {}


def firmware_files() -> dict[str, bytes]:
    """What ``hw flash`` puts on a board: board path -> bytes (``firmware.app_files()``)."""
    try:
        from firmware import app_files
    except ImportError:  # a stale editable install sees firmware/ as a namespace package
        init = Path(__file__).resolve().parents[1] / "firmware" / "__init__.py"
        spec = importlib.util.spec_from_file_location("_scfw_firmware_files", init)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        app_files = mod.app_files
    return {"/" + board_path: src.read_bytes() for board_path, src in app_files()}


def load_flashed_firmware(files: BoardFiles | dict[str, bytes]) -> tuple[ModuleType, ModuleType]:
    """(app, hal_host) imported from the ``/scfw/*.py`` files found on the board.

    The flashed modules become a package named after their content hash, with the repository's
    host-only ``hal_host.py`` added (it never goes onto a board); identical flashes share it.
    """
    sources = {
        p: bytes(d) for p, d in files.items() if p.startswith("/scfw/") and p.endswith(".py")
    }
    for p, d in files.items():
        if p.startswith("/scfw/") and p.endswith(".mpy") and p[:-4] + ".py" not in sources:
            sources[p[:-4] + ".py"] = source_of_mpy(p, bytes(d))
    digest = hashlib.sha256()
    for path in sorted(sources):
        digest.update(path.encode() + b"\0" + sources[path] + b"\0")
    name = f"_scfw_flashed_{digest.hexdigest()[:16]}"
    with _load_lock:
        if name in _loaded:
            return _loaded[name]
        root = Path(tempfile.mkdtemp(prefix="scfw-flashed-"))
        atexit.register(shutil.rmtree, root, True)
        pkg_dir = root / name
        pkg_dir.mkdir()
        for path, data in sources.items():
            (pkg_dir / path.removeprefix("/scfw/")).write_bytes(data)
        if not (pkg_dir / "__init__.py").exists():
            (pkg_dir / "__init__.py").write_bytes(b"")
        repo_hal = Path(__file__).resolve().parents[1] / "firmware" / "scfw" / "hal_host.py"
        shutil.copy(repo_hal, pkg_dir / "hal_host.py")
        spec = importlib.util.spec_from_file_location(
            name, pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)]
        )
        assert spec is not None and spec.loader is not None
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[name] = pkg
        spec.loader.exec_module(pkg)
        mods = (importlib.import_module(f"{name}.app"), importlib.import_module(f"{name}.hal_host"))
        _loaded[name] = mods
        return mods


_REPO_SCFW = Path(__file__).resolve().parents[1] / "firmware" / "scfw"
# .mpy major version -> the compilers (by MicroPython version) that may have made a bytecode file
_MPY_COMPILERS = {6: ((1, 27, 0), (1, 22, 0))}


def source_of_mpy(path: str, data: bytes) -> bytes:
    """The source of a flashed ``/scfw/x.mpy``: the emulator runs the app under CPython, so it
    maps bytecode back to ``firmware/scfw/x.py`` — and only when compiling that file with the
    same mpy-cross gives exactly these bytes. An .mpy from other sources cannot run here."""
    from hw_bridge import mpyc

    src = _REPO_SCFW / Path(path).name.removesuffix(".mpy")
    src = src.with_suffix(".py")
    fmt = mpyc.mpy_header_version(data)
    versions = _MPY_COMPILERS.get(fmt[0], ()) if fmt is not None else ()
    if not versions or not src.is_file():
        raise RuntimeError(f"{path}: the emulator cannot run this .mpy (no matching source)")
    key = (path, hashlib.sha256(data).hexdigest())
    if key not in _mpy_sources:
        name = path.lstrip("/")[:-4] + ".py"
        if not any(mpyc.compile_source(src, v, name) == data for v in versions):
            raise RuntimeError(f"{path}: not built from this checkout's {src.name}")
        _mpy_sources[key] = src.read_bytes()
    return _mpy_sources[key]


_mpy_sources: dict[tuple[str, str], bytes] = {}


class _FlashFiles(dict[str, bytes]):
    """The app's filesystem; every write is also rebuilt into the board's flash (LittleFS)."""

    def __init__(self, board: EmulatedBoard, files: BoardFiles) -> None:
        super().__init__(files.files)
        self._board = board
        self._offset = files.vfs_offset
        self._size = files.block_count * 4096

    def __setitem__(self, key: str, value: bytes) -> None:
        from hw_bridge import fsimage

        super().__setitem__(key, bytes(value))
        image = fsimage.build_image(dict(self), size=self._size)
        self._board.flash[self._offset : self._offset + self._size] = image


class _Lines:
    """``readline`` for the app: an over-long line reaches it as one (too long) line instead of
    the ValueError asyncio's StreamReader raises, as MicroPython's reader would behave."""

    def __init__(self, serial: SerialPort) -> None:
        self._serial = serial

    async def readline(self) -> bytes:
        try:
            return await self._serial.readline()
        except ValueError:
            return b"x" * 8192 + b"\n"


class FirmwareAppRunner:
    """``EmulatedBoard.app_runner`` that boots the firmware app found in the board's flash."""

    def __init__(self, board: EmulatedBoard, wifi: Any = None) -> None:
        self.board = board
        self.wifi = wifi  # hal_host.FakeWifi; one per board so a test can drop it
        self.hal: Any = None

    async def __call__(self, files: BoardFiles, serial: SerialPort) -> None:
        if not any(m in files for m in APP_MODULES):  # MicroPython without our app: its REPL
            await default_app_runner(files, serial)
            return
        app, hal_host = load_flashed_firmware(files)
        if self.wifi is None:
            self.wifi = hal_host.FakeWifi()
        self.hal = hal_host.HostHal(
            write_line=serial.write,
            device_uid=self.board.mac,
            chip=self.board.chip,
            files=_FlashFiles(self.board, files),
            wifi=self.wifi,
            heap_bytes=hal_host.HEAP_BYTES.get(self.board.chip, min(hal_host.HEAP_BYTES.values())),
        )
        await app.run(self.hal, _Lines(serial))


def factory_flash(board: EmulatedBoard, files: dict[str, bytes]) -> None:
    """Give ``board`` a bootable image and ``files`` in its LittleFS, as after ``hw flash``."""
    from hw_bridge import fsimage, images

    fw = images.make_test_image(0x10000, chip=board.chip)
    board.flash[APP_OFFSET : APP_OFFSET + len(fw)] = fw
    offset = images.vfs_offset_from_flash(board.flash)
    size = len(board.flash) - offset
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
    key = (digest, size)
    image = _image_cache.get(key)
    if image is None:
        image = _image_cache[key] = fsimage.build_image(files, size=size)
    board.flash[offset : offset + size] = image


def start_app_boards(
    n: int,
    *,
    protocol: Literal["socket", "rfc2217"] = "socket",
    name_prefix: str = "emu",
    first: int = 1,
    files: dict[str, bytes] | None = None,
    server: EmulatorServer | None = None,
) -> EmulatedBoards:
    """Start ``n`` boards running the firmware app; names ``emu-1``…, URLs on 127.0.0.1."""
    app_files = files if files is not None else firmware_files()
    boards = (_app_board(f"{name_prefix}-{i}", app_files) for i in range(first, first + n))
    return start_boards(boards, protocol, server)


def _app_board(name: str, files: dict[str, bytes]) -> EmulatedBoard:
    board = EmulatedBoard(name, boot_mode="app")
    board.app_runner = FirmwareAppRunner(board)
    factory_flash(board, files)
    return board


def main(argv: list[str] | None = None) -> int:
    """``python -m hw_bridge.appmode -n 4``: boards for manual tests; prints their URLs."""
    p = argparse.ArgumentParser(prog="python -m hw_bridge.appmode", description=main.__doc__)
    p.add_argument("-n", "--count", type=int, default=1)
    p.add_argument("--protocol", choices=["socket", "rfc2217"], default="socket")
    args = p.parse_args(argv)
    boards = start_app_boards(args.count, protocol=args.protocol)
    try:
        for h in boards:
            print(f"{h.board.name} {h.url}", flush=True)
        sys.stdin.read()  # until EOF / Ctrl-D
    except KeyboardInterrupt:
        pass
    finally:
        boards.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
