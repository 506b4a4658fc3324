"""``scfleet hw flash``: write MicroPython, the app filesystem and any images to many boards.

esptool is driven through its Python API (``esptool.cmds``), never by parsing its console
output. Its logger is a process-wide singleton, so every board gets its own **spawned process**;
a small logger installed in that process turns esptool's progress into events on a queue, which
the parent renders as one progress bar per board (plain lines when not on a terminal) and
finally a table. One board failing never stops the others; the command exits with
``HardwareError``'s code when any board failed.

Per board: connect (retried once on failure), check the firmware is an image for the detected
chip, start the stub, optionally raise the baud rate, attach flash, detect its size, build the
LittleFS for the vfs region that size implies (MicroPython >= 1.26 puts it after the last
partition), write everything compressed (unless told not to), verify by MD5, reset.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw_bridge.boardconfig import CONFIG_PATH, BoardSettings, read_wifi_key
from scfleet_core.errors import ConfigError, HardwareError
from scfleet_core.secrets import Secret

ROM_BAUD = 115200
DEFAULT_BAUD = 460800


@dataclass(frozen=True)
class Tuning:
    """esptool knobs (its config-file options), written to a private ``esptool.cfg``.

    The defaults are esptool's; tests shrink them so a dead board fails in seconds.
    """

    timeout: float = 3.0
    sync_timeout: float = 0.1
    connect_attempts: int = 7
    write_block_attempts: int = 3
    erase_write_timeout_per_mb: float = 40.0
    md5_timeout_per_mb: float = 8.0
    connect_retries: int = 1  # whole detect_chip() retries on top of esptool's attempts
    # esptool 5.x builds a hex dump of every packet it writes for its trace, even with tracing
    # off (an eager f-string around its lazy HexFormatter): ~1 s of CPU per MB on the wire,
    # which on a 2-core host is most of the cost of flashing 8 boards at once. Tracing is
    # never enabled in our workers, so we let the formatter return a placeholder there.
    lazy_trace: bool = True
    # "spawn": a fresh interpreter per board (the default; nothing inherited). "forkserver":
    # boards fork from one clean server process that has esptool imported already, which
    # saves ~0.3 s of CPU per board at start-up — still one process (and logger) per board.
    start_method: str = "spawn"

    def cfg_text(self) -> str:
        return (
            "[esptool]\n"
            f"timeout = {self.timeout}\n"
            f"sync_timeout = {self.sync_timeout}\n"
            f"connect_attempts = {self.connect_attempts}\n"
            f"write_block_attempts = {self.write_block_attempts}\n"
            f"erase_write_timeout_per_mb = {self.erase_write_timeout_per_mb}\n"
            f"md5_timeout_per_mb = {self.md5_timeout_per_mb}\n"
        )


@dataclass(frozen=True)
class BoardConfig:
    """What goes into ``/scfw_config.json``; ``device_id`` may use ``{n}`` and ``{mac}``."""

    device_id_pattern: str
    target: str
    wifi_ssid: str | None = None
    wifi_key: Secret | None = None

    def settings(self, n: int, mac: str) -> BoardSettings:
        device_id = self.device_id_pattern.format(n=n, mac=mac.replace(":", ""))
        return BoardSettings(device_id, self.target, self.wifi_ssid, self.wifi_key)

    def render(self, n: int, mac: str) -> bytes:
        return self.settings(n, mac).file_bytes()


@dataclass(frozen=True)
class Image:
    address: int
    data: bytes
    name: str


@dataclass(frozen=True)
class FlashJob:
    """Everything one worker process needs (picklable)."""

    port: str
    index: int  # 1-based, feeds ``{n}`` in the device ID pattern
    firmware: Image | None = None  # written at the chip's bootloader offset
    images: tuple[Image, ...] = ()
    app_files: Mapping[str, bytes] | None = None  # board path -> content; None = no vfs image
    config: BoardConfig | None = None
    baud: int = DEFAULT_BAUD
    compress: bool = True
    before: str = "default-reset"
    after: str = "hard-reset"
    # Read back up to this many bytes of each region after verifying (None: don't). Reading
    # is slow over socket:// (~80 KB/s: pyserial's socket in_waiting says 0/1, so esptool's
    # SLIP reader takes a byte per call), hence the cap.
    read_back: int | None = None


@dataclass(frozen=True)
class BoardResult:
    port: str
    ok: bool
    chip: str = ""
    mac: str = ""
    bytes_written: int = 0
    seconds: float = 0.0
    verified: bool = False
    error: str = ""
    device_id: str = ""
    regions: tuple[tuple[int, int], ...] = ()  # (address, length) written
    read_back_sha256: tuple[str, ...] = ()  # per region, of the bytes read back (capped)


@dataclass
class _Progress:
    stage: str = "waiting"
    done: int = 0
    total: int = 0


# ------------------------------------------------------------------------------------------
# worker process
# ------------------------------------------------------------------------------------------
def _worker(job: FlashJob, events: Any, cfg_path: str | None, tuning: Tuning) -> None:
    """Runs in a spawned process: owns esptool's global logger for this one board."""
    if cfg_path:
        os.environ["ESPTOOL_CFGFILE"] = cfg_path
    if tuning.lazy_trace:
        from esptool import loader

        loader.HexFormatter.__str__ = lambda self: "<packet>"  # type: ignore[method-assign]
    connect_retries = tuning.connect_retries
    port = job.port

    def emit(kind: str, *payload: Any) -> None:
        events.put((port, kind, *payload))

    try:
        result = _flash_one(job, emit, connect_retries)
    except BaseException as exc:  # never let a board die silently
        result = BoardResult(port=port, ok=False, error=f"worker crashed: {exc!r}")
    emit("result", result)


def _install_logger(emit: Any) -> list[str]:
    """Route esptool's logger into events; returns the buffer of recent plain lines."""
    from esp_pylib.logger import EspLogBase
    from esptool.logger import log

    recent: list[str] = []

    class _Task:
        def __init__(self, total: int) -> None:
            self.total = total
            self.n = 0

        def update(self, advance: int = 1, description: str | None = None) -> None:
            self.n += advance
            if description:
                recent.append(description)  # "Writing at 0x...": where a failure happened
                del recent[:-20]
            emit("chunk", self.n, self.total)

    class QueueLogger(EspLogBase):
        def _keep(self, *args: Any) -> None:
            text = " ".join(str(a) for a in args).strip()
            if text:
                recent.append(text)
                del recent[:-20]

        def print(self, *args: Any, **kwargs: Any) -> None:
            self._keep(*args)

        def err(self, *args: Any, suggestion: str | None = None) -> None:
            self._keep(*args)

        def warn(self, *args: Any, suggestion: str | None = None) -> None:
            self._keep(*args)

        def note(self, *args: Any) -> None:
            self._keep(*args)

        def hint(self, *args: Any) -> None:
            pass

        def debug(self, *args: Any) -> None:
            pass

        def set_verbosity(self, mode: int | str) -> None:
            pass

        def progress_bar(self, *args: Any, **kwargs: Any) -> None:
            pass

        def progress(self, total: int, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            @contextlib.contextmanager
            def cm() -> Any:
                yield _Task(total)

            return cm()

    log.set_logger(QueueLogger())
    return recent


def _flash_one(job: FlashJob, emit: Any, connect_retries: int) -> BoardResult:
    import hashlib

    from esptool import cmds
    from esptool.util import FatalError
    from serial import SerialException

    from hw_bridge import fsimage, images

    recent = _install_logger(emit)
    t0 = time.monotonic()
    port = job.port
    esp = None
    chip = mac = device_id = ""
    regions: list[tuple[int, int]] = []
    stage = "connect"
    try:
        for attempt in range(connect_retries + 1):
            emit("stage", "connecting" if attempt == 0 else f"retry {attempt}")
            try:
                esp = cmds.detect_chip(port, ROM_BAUD, job.before)
                break
            except (FatalError, SerialException, OSError) as exc:
                if attempt == connect_retries:
                    raise
                emit("note", f"connect failed ({_first_line(exc)}), retrying")
                time.sleep(0.5)
        assert esp is not None
        stage = "check"
        chip = esp.CHIP_NAME
        mac = ":".join(f"{b:02x}" for b in esp.read_mac())
        emit("identity", chip, mac)
        layout = images.CHIPS.get(chip)
        plan: list[Image] = []
        if job.firmware is not None:
            if layout is None:
                raise images.ImageError(f"no flash layout known for {chip}")
            images.check_image_for_chip(job.firmware.data, chip, name=job.firmware.name)
            plan.append(Image(layout.bootloader_offset, job.firmware.data, job.firmware.name))
        for img in job.images:
            if (
                layout is not None
                and img.address == layout.bootloader_offset
                and img.data[:1] == b"\xe9"
            ):
                images.check_image_for_chip(img.data, chip, name=img.name)
            plan.append(img)

        stage = "stub"
        emit("stage", "stub")
        esp = cmds.run_stub(esp)
        if job.baud > ROM_BAUD:
            esp.change_baud(job.baud)
        cmds.attach_flash(esp)
        flash_size = images_flash_size(cmds.detect_flash_size(esp))
        if job.app_files is not None:
            if job.firmware is not None and layout is not None:
                parts = images.partitions_in_firmware(job.firmware.data, layout)
            else:
                parts = []
            vfs_offset, vfs_size = images.vfs_region(parts, flash_size)
            files = dict(job.app_files)
            if job.config is not None:
                settings = job.config.settings(job.index, mac)
                device_id = settings.device_id
                files[CONFIG_PATH] = settings.file_bytes()
            fs = fsimage.build_image(files, size=vfs_size)
            plan.append(Image(vfs_offset, fs, f"littlefs@{vfs_offset:#x}"))
        _check_overlaps(plan, flash_size)

        total = sum(len(i.data) for i in plan)
        emit("total", total)
        done = 0
        stage = "write"
        for img in plan:
            emit("stage", f"writing {img.name}")
            emit("file", done, len(img.data))
            cmds.write_flash(
                esp,
                [(img.address, img.data)],
                compress=job.compress,
                no_compress=not job.compress,
            )
            done += len(img.data)
            regions.append((img.address, len(img.data)))
            emit("chunk_abs", done)
        stage = "verify"
        emit("stage", "verifying")
        cmds.verify_flash(esp, [(i.address, i.data) for i in plan])
        shas: list[str] = []
        if job.read_back is not None:
            emit("stage", "reading back")
            for img in plan:
                n = min(len(img.data), job.read_back)
                data = cmds.read_flash(esp, img.address, n, no_progress=True)
                assert data is not None
                shas.append(hashlib.sha256(data).hexdigest())
        stage = "reset"
        emit("stage", "resetting")
        cmds.reset_chip(esp, job.after)
        return BoardResult(
            port=port,
            ok=True,
            chip=chip,
            mac=mac,
            bytes_written=total,
            seconds=time.monotonic() - t0,
            verified=True,
            device_id=device_id,
            regions=tuple(regions),
            read_back_sha256=tuple(shas),
        )
    except Exception as exc:  # one board's failure is its row in the table, not a crash
        message = _first_line(exc)
        if any(s in message for s in _SILENCE):
            where = next((r for r in reversed(recent) if r.startswith("Writing at")), "")
            message = "board stopped answering" + (f" ({where.lower()})" if where else "")
        if stage == "connect":
            message = f"could not connect: {message}"
        elif stage == "write":
            message = f"write failed: {message}"
        elif stage == "verify":
            message = f"verify failed: {message}"
        return BoardResult(
            port=port,
            ok=False,
            chip=chip,
            mac=mac,
            seconds=time.monotonic() - t0,
            error=message,
            device_id=device_id,
            regions=tuple(regions),
        )
    finally:
        if esp is not None:
            with contextlib.suppress(Exception):
                esp._port.close()


#: esptool's ways of saying "nothing came back" (timeouts inside its SLIP reader).
_SILENCE = (
    "No serial data received",
    "Serial data stream stopped",
    "Packet content transfer stopped",
    "No more data to read from the serial port",
)


def images_flash_size(name: str | None) -> int:
    """esptool's flash size name ('4MB') in bytes; 4 MB when the chip did not say."""
    if not name:
        return 4 * 1024 * 1024
    units = {"KB": 1024, "MB": 1024 * 1024}
    return int(name[:-2]) * units[name[-2:]]


def _check_overlaps(plan: Sequence[Image], flash_size: int) -> None:
    spans = sorted((i.address, i.address + len(i.data), i.name) for i in plan)
    for (a0, a1, an), (b0, _b1, bn) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            raise ValueError(f"{an} ({a0:#x}-{a1:#x}) overlaps {bn} at {b0:#x}")
    if spans and spans[-1][1] > flash_size:
        raise ValueError(
            f"{spans[-1][2]} ends at {spans[-1][1]:#x}, past the {flash_size:#x}-byte flash"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].split(". This can have many causes")[0]


# ------------------------------------------------------------------------------------------
# parent: spawn, watch, render
# ------------------------------------------------------------------------------------------
def flash_boards(
    jobs: Sequence[FlashJob],
    *,
    tuning: Tuning | None = None,
    display: str = "auto",
    stream: Any = None,
) -> list[BoardResult]:
    """Flash every job in parallel, one spawned process per board; results in job order.

    ``display``: ``"auto"`` (rich bars on a terminal, plain lines otherwise), ``"rich"``,
    ``"plain"`` or ``"none"``.
    """
    tuning = tuning or Tuning()
    out = stream or sys.stdout
    if display == "auto":
        display = "rich" if getattr(out, "isatty", lambda: False)() else "plain"
    ctx: Any = mp.get_context(tuning.start_method)
    if tuning.start_method == "forkserver":
        ctx.set_forkserver_preload(
            ["esptool.cmds", "hw_bridge.flash", "hw_bridge.fsimage", "littlefs"]
        )
    events = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="scfleet-esptool-") as tmp:
        cfg_path = str(Path(tmp) / "esptool.cfg")
        Path(cfg_path).write_text(tuning.cfg_text())
        procs = {
            job.port: ctx.Process(
                target=_worker,
                args=(job, events, cfg_path, tuning),
                name=f"flash-{job.port}",
                daemon=True,
            )
            for job in jobs
        }
        for p in procs.values():
            p.start()
        view = _View(display, [j.port for j in jobs], out)
        results: dict[str, BoardResult] = {}
        try:
            while len(results) < len(jobs):
                try:
                    port, kind, *payload = events.get(timeout=0.5)
                except queue_mod.Empty:
                    for port_name, p in procs.items():
                        if (
                            port_name not in results
                            and not p.is_alive()
                            and p.exitcode not in (0, None)
                        ):
                            results[port_name] = BoardResult(
                                port=port_name, ok=False, error=f"worker died (exit {p.exitcode})"
                            )
                            view.finish(results[port_name])
                    continue
                if kind == "result":
                    results[port] = payload[0]
                    view.finish(payload[0])
                else:
                    view.event(port, kind, payload)
        finally:
            view.close()
            for p in procs.values():
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
    return [results[j.port] for j in jobs]


class _View:
    """Per-board progress: a rich bar each on a terminal, otherwise a line per stage."""

    def __init__(self, display: str, ports: Sequence[str], out: Any) -> None:
        self.display = display
        self.out = out
        self.state = {p: _Progress() for p in ports}
        self._file_base: dict[str, tuple[int, int]] = {}
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        if display == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.fields[port]:<24}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[stage]}"),
                console=Console(file=out),
            )
            self._progress.start()
            for p in ports:
                self._tasks[p] = self._progress.add_task("", total=None, port=p, stage="waiting")

    def _line(self, text: str) -> None:
        if self.display == "plain":
            print(text, file=self.out, flush=True)

    def event(self, port: str, kind: str, payload: Sequence[Any]) -> None:
        st = self.state[port]
        if kind == "stage":
            st.stage = str(payload[0])
            self._line(f"{port}: {st.stage}")
        elif kind == "note":
            self._line(f"{port}: {payload[0]}")
        elif kind == "identity":
            self._line(f"{port}: {payload[0]} {payload[1]}")
        elif kind == "total":
            st.total = int(payload[0])
        elif kind == "file":
            self._file_base[port] = (int(payload[0]), int(payload[1]))
        elif kind == "chunk":
            base, size = self._file_base.get(port, (0, 0))
            n, total = int(payload[0]), max(1, int(payload[1]))
            st.done = base + size * min(n, total) // total
        elif kind == "chunk_abs":
            st.done = int(payload[0])
            if self.display == "plain" and st.total:
                self._line(f"{port}: {st.done}/{st.total} bytes")
        if self._progress is not None:
            self._progress.update(
                self._tasks[port], completed=st.done, total=st.total or None, stage=st.stage
            )

    def finish(self, result: BoardResult) -> None:
        st = self.state[result.port]
        st.stage = "done" if result.ok else "FAILED"
        if self._progress is not None:
            self._progress.update(self._tasks[result.port], stage=st.stage)
        self._line(f"{result.port}: {'ok' if result.ok else 'FAILED: ' + result.error}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def render_table(results: Sequence[BoardResult], out: Any, *, rich: bool) -> None:
    """The final summary: one row per board."""
    headers = ("port", "chip", "MAC", "bytes", "seconds", "verified", "error")
    rows = [
        (
            r.port,
            r.chip or "-",
            r.mac or "-",
            str(r.bytes_written),
            f"{r.seconds:.1f}",
            "yes" if r.verified else "no",
            r.error,
        )
        for r in results
    ]
    if rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers)
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


# ------------------------------------------------------------------------------------------
# inputs: files, secrets, ports
# ------------------------------------------------------------------------------------------
def parse_image_arg(text: str) -> tuple[int, Path]:
    """``ADDR:FILE`` with ADDR in hex (0x...) or decimal."""
    addr, sep, path = text.partition(":")
    if not sep or not path:
        raise ConfigError("expected ADDR:FILE, e.g. 0x10000:app.bin", key=f"--image {text}")
    try:
        address = int(addr, 0)
    except ValueError:
        raise ConfigError(f"bad address {addr!r}", key=f"--image {text}") from None
    if address % 0x1000:
        raise ConfigError(f"address {address:#x} is not 4 KiB aligned", key=f"--image {text}")
    return address, Path(path)


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=str(path)) from None


def load_app_files(app_dir: Path | None) -> dict[str, bytes]:
    """The firmware app: ``firmware.app_files()`` when it exists, else every file in a dir."""
    if app_dir is None:
        try:
            import firmware

            pairs = firmware.app_files()
        except (ImportError, AttributeError):
            raise ConfigError(
                "firmware.app_files() is not importable (an editable install older than "
                "firmware/ needs `pip install -e .`); pass --app-dir with the app files"
            ) from None
        return {
            "/" + str(board_path).lstrip("/"): Path(src).read_bytes() for board_path, src in pairs
        }
    if not app_dir.is_dir():
        raise ConfigError("not a directory", source=str(app_dir), key="--app-dir")
    return {
        "/" + p.relative_to(app_dir).as_posix(): p.read_bytes()
        for p in sorted(app_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------
def register_hw(subs: Any) -> None:
    """Add ``hw flash`` to the ``hw`` group (see ``hw_bridge.cli``)."""
    p = subs.add_parser(
        "flash",
        help="flash MicroPython, the app filesystem and images onto boards",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--port", action="append", metavar="PORT", help="path, URL or board name; repeatable"
    )
    where.add_argument("--all", action="store_true", help="every detected ESP32 board")
    p.add_argument("--firmware", type=Path, metavar="BIN", help="official MicroPython .bin")
    p.add_argument("--image", action="append", default=[], metavar="ADDR:FILE")
    p.add_argument("--app-dir", type=Path, help="app files (default: firmware.app_files())")
    p.add_argument("--no-app", action="store_true", help="write no filesystem image")
    p.add_argument(
        "--py", action="store_true", help="ship the app as .py sources (default: .mpy bytecode)"
    )
    p.add_argument(
        "--micropython",
        metavar="X.Y.Z",
        help="the firmware's MicroPython version for mpy-cross (default: read from --firmware)",
    )
    p.add_argument("--device-id-pattern", default="esp32-{n:06d}")
    p.add_argument("--target", default="http://127.0.0.1:8080", metavar="URL")
    p.add_argument("--wifi-ssid")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--wifi-key-env", metavar="VAR", help="env var holding the Wi-Fi key")
    key.add_argument("--wifi-key-file", type=Path, metavar="FILE")
    p.add_argument("--no-compress", action="store_true")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    p.add_argument("--before", default="default-reset", choices=["default-reset", "no-reset"])
    p.add_argument(
        "--after", default="hard-reset", choices=["hard-reset", "no-reset", "no-reset-stub"]
    )
    p.add_argument("--timeout", type=float, default=3.0, help="esptool per-command timeout")
    p.add_argument("--connect-attempts", type=int, default=7)
    p.set_defaults(func=cmd_flash)


def cmd_flash(args: argparse.Namespace) -> int:
    from hw_bridge import images
    from hw_bridge import ports as port_names

    if args.all:
        ports = [b.device for b in port_names.list_boards()]
    else:  # paths, URLs, or the stable names `scfleet hw list` shows
        ports = [port_names.resolve(spec) for spec in args.port]
    if not ports:
        raise HardwareError("no ESP32 boards found (looked for known USB-UART VID:PIDs)")
    if len(set(ports)) != len(ports):
        raise ConfigError("a port is listed twice", key="--port")
    try:
        args.device_id_pattern.format(n=1, mac="0")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"bad pattern ({exc})", key="--device-id-pattern") from None

    firmware = None
    if args.firmware is not None:
        data = read_file(args.firmware, "firmware")
        try:
            images.chip_of_image(data, name=str(args.firmware))
        except images.ImageError as exc:
            raise ConfigError(str(exc), key="--firmware") from None
        firmware = Image(0, data, args.firmware.name)
    extra = []
    for text in args.image:
        address, path = parse_image_arg(text)
        extra.append(Image(address, read_file(path, "image"), path.name))
    if firmware is None and not extra:
        raise ConfigError("nothing to flash: give --firmware and/or --image", key="--firmware")

    app_files = None
    config = None
    if firmware is not None and not args.no_app:
        from hw_bridge import mpyc

        version = (
            mpyc.parse_version(args.micropython)
            if args.micropython
            else mpyc.version_of_image(firmware.data)
        )
        app_files = mpyc.ship(load_app_files(args.app_dir), version, py=args.py)
        config = BoardConfig(
            device_id_pattern=args.device_id_pattern,
            target=args.target,
            wifi_ssid=args.wifi_ssid,
            wifi_key=read_wifi_key(args.wifi_key_env, args.wifi_key_file, env_key="--wifi-key-env"),
        )
    jobs = [
        FlashJob(
            port=port,
            index=i,
            firmware=firmware,
            images=tuple(extra),
            app_files=app_files,
            config=config,
            baud=args.baud,
            compress=not args.no_compress,
            before=args.before,
            after=args.after,
        )
        for i, port in enumerate(ports, start=1)
    ]
    tuning = Tuning(timeout=args.timeout, connect_attempts=args.connect_attempts)
    results = flash_boards(jobs, tuning=tuning)
    render_table(results, sys.stdout, rich=sys.stdout.isatty())
    failed = [r for r in results if not r.ok]
    if failed:
        names = ", ".join(r.port for r in failed)
        raise HardwareError(f"{len(failed)} of {len(results)} boards failed: {names}")
    return 0
