"""One board's flashing, as operations on esptool's loader (in the style of ``esptool.cmds``:
functions that take the connected ``esp`` and do one thing), and :func:`flash_board`, the
procedure that chains them and turns any failure into the board's :class:`BoardResult`.

Connect (retried on failure), check the firmware is an image for the detected chip, start the
stub, optionally raise the baud rate, attach flash, detect its size, build the LittleFS for the
vfs region that size implies (MicroPython >= 1.26 puts it after the last partition), write
everything compressed (unless told not to), verify by MD5, reset. esptool is imported here
only, inside the functions: this runs in a board's worker process.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from hw_bridge.boardconfig import CONFIG_PATH
from hw_bridge.flash.jobs import (
    ROM_BAUD,
    BoardResult,
    FileStart,
    FlashEvent,
    FlashJob,
    Identity,
    Image,
    Note,
    Stage,
    Total,
    Written,
)

Emit = Callable[[FlashEvent], None]
#: esptool's ESPLoader (esptool has no type information; its objects are ``Any`` to mypy).
Loader = Any

#: esptool's ways of saying "nothing came back" (timeouts inside its SLIP reader).
_SILENCE = (
    "No serial data received",
    "Serial data stream stopped",
    "Packet content transfer stopped",
    "No more data to read from the serial port",
)


def connect(port: str, before: str, retries: int, emit: Emit) -> Loader:
    """esptool's ``detect_chip``, tried ``retries`` more times after a failure."""
    from esptool import cmds
    from esptool.util import FatalError
    from serial import SerialException

    for attempt in range(retries + 1):
        emit(Stage("connecting" if attempt == 0 else f"retry {attempt}"))
        try:
            return cmds.detect_chip(port, ROM_BAUD, before)
        except (FatalError, SerialException, OSError) as exc:
            if attempt == retries:
                raise
            emit(Note(f"connect failed ({first_line(exc)}), retrying"))
            time.sleep(0.5)
    raise AssertionError("unreachable")


def identify(esp: Loader) -> tuple[str, str]:
    """(chip name, MAC as ``aa:bb:..``)."""
    return str(esp.CHIP_NAME), ":".join(f"{b:02x}" for b in esp.read_mac())


def plan_images(job: FlashJob, chip: str) -> list[Image]:
    """The firmware at the chip's bootloader offset, then ``job.images``; an ESP image meant
    for another chip is refused (:class:`hw_bridge.images.ImageError`)."""
    from hw_bridge import images

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
    return plan


def start_stub(esp: Loader, baud: int) -> Loader:
    """The flasher stub running, at ``baud`` when faster than the ROM's, flash attached."""
    from esptool import cmds

    esp = cmds.run_stub(esp)
    if baud > ROM_BAUD:
        esp.change_baud(baud)
    cmds.attach_flash(esp)
    return esp


def flash_size(esp: Loader) -> int:
    from esptool import cmds

    return images_flash_size(cmds.detect_flash_size(esp))


def images_flash_size(name: str | None) -> int:
    """esptool's flash size name ('4MB') in bytes; 4 MB when the chip did not say."""
    if not name:
        return 4 * 1024 * 1024
    units = {"KB": 1024, "MB": 1024 * 1024}
    return int(name[:-2]) * units[name[-2:]]


def app_image(job: FlashJob, chip: str, mac: str, size: int) -> tuple[Image, str]:
    """(the LittleFS with the app and the board's config, for the vfs region of a ``size``
    flash, its device ID or "")."""
    from hw_bridge import fsimage, images

    assert job.app_files is not None
    layout = images.CHIPS.get(chip)
    if job.firmware is not None and layout is not None:
        parts = images.partitions_in_firmware(job.firmware.data, layout)
    else:
        parts = []
    vfs_offset, vfs_size = images.vfs_region(parts, size)
    files = dict(job.app_files)
    device_id = ""
    if job.config is not None:
        settings = job.config.settings(job.index, mac)
        device_id = settings.device_id
        files[CONFIG_PATH] = settings.file_bytes()
    fs = fsimage.build_image(files, size=vfs_size)
    return Image(vfs_offset, fs, f"littlefs@{vfs_offset:#x}"), device_id


def check_overlaps(plan: Sequence[Image], size: int) -> None:
    """No two images share a byte and none ends past the flash."""
    spans = sorted((i.address, i.address + len(i.data), i.name) for i in plan)
    for (a0, a1, an), (b0, _b1, bn) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            raise ValueError(f"{an} ({a0:#x}-{a1:#x}) overlaps {bn} at {b0:#x}")
    if spans and spans[-1][1] > size:
        raise ValueError(f"{spans[-1][2]} ends at {spans[-1][1]:#x}, past the {size:#x}-byte flash")


def write_image(esp: Loader, img: Image, *, compress: bool) -> None:
    from esptool import cmds

    cmds.write_flash(esp, [(img.address, img.data)], compress=compress, no_compress=not compress)


def verify_images(esp: Loader, plan: Sequence[Image]) -> None:
    """The flash's MD5 of every region equals the image's (esptool raises otherwise)."""
    from esptool import cmds

    cmds.verify_flash(esp, [(i.address, i.data) for i in plan])


def read_back_sha256(esp: Loader, plan: Sequence[Image], limit: int) -> list[str]:
    """sha256 of the first ``limit`` bytes of each region, read back from the flash."""
    from esptool import cmds

    shas = []
    for img in plan:
        data = cmds.read_flash(esp, img.address, min(len(img.data), limit), no_progress=True)
        assert data is not None
        shas.append(hashlib.sha256(data).hexdigest())
    return shas


def reset(esp: Loader, after: str) -> None:
    from esptool import cmds

    cmds.reset_chip(esp, after)


def flash_board(
    job: FlashJob, emit: Emit, connect_retries: int, recent: Sequence[str]
) -> BoardResult:
    """The whole procedure for one board; ``recent`` is esptool's last log lines (where a
    silent board stopped). Never raises: a failure is the result's ``error``."""
    t0 = time.monotonic()
    esp: Loader = None
    chip = mac = device_id = ""
    regions: list[tuple[int, int]] = []
    stage = "connect"
    try:
        esp = connect(job.port, job.before, connect_retries, emit)
        stage = "check"
        chip, mac = identify(esp)
        emit(Identity(chip, mac))
        plan = plan_images(job, chip)

        stage = "stub"
        emit(Stage("stub"))
        esp = start_stub(esp, job.baud)
        size = flash_size(esp)
        if job.app_files is not None:
            fs, device_id = app_image(job, chip, mac, size)
            plan.append(fs)
        check_overlaps(plan, size)

        total = sum(len(i.data) for i in plan)
        emit(Total(total))
        done = 0
        stage = "write"
        for img in plan:
            emit(Stage(f"writing {img.name}"))
            emit(FileStart(done, len(img.data)))
            write_image(esp, img, compress=job.compress)
            done += len(img.data)
            regions.append((img.address, len(img.data)))
            emit(Written(done))
        stage = "verify"
        emit(Stage("verifying"))
        verify_images(esp, plan)
        shas: list[str] = []
        if job.read_back is not None:
            emit(Stage("reading back"))
            shas = read_back_sha256(esp, plan, job.read_back)
        stage = "reset"
        emit(Stage("resetting"))
        reset(esp, job.after)
        return BoardResult(
            port=job.port,
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
        return BoardResult(
            port=job.port,
            ok=False,
            chip=chip,
            mac=mac,
            seconds=time.monotonic() - t0,
            error=_failure(stage, exc, recent),
            device_id=device_id,
            regions=tuple(regions),
        )
    finally:
        if esp is not None:
            with contextlib.suppress(Exception):
                esp._port.close()


def _failure(stage: str, exc: Exception, recent: Sequence[str]) -> str:
    message = first_line(exc)
    if any(s in message for s in _SILENCE):
        where = next((r for r in reversed(recent) if r.startswith("Writing at")), "")
        message = "board stopped answering" + (f" ({where.lower()})" if where else "")
    prefix = {"connect": "could not connect", "write": "write failed", "verify": "verify failed"}
    return f"{prefix[stage]}: {message}" if stage in prefix else message


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].split(". This can have many causes")[0]
