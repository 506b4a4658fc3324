"""What ``hw flash`` is asked to do and what it reports: the picklable values that cross from
the parent to a board's worker process and back (jobs, esptool's tuning, progress events,
results)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hw_bridge.boardconfig import BoardSettings
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


# --- progress events: worker process -> parent (one queue for all boards) -----------------
@dataclass(frozen=True)
class Stage:
    """The board entered a step ("connecting", "writing micropython.bin", ...)."""

    text: str


@dataclass(frozen=True)
class Note:
    """Something worth a line (a retried connect)."""

    text: str


@dataclass(frozen=True)
class Identity:
    chip: str
    mac: str


@dataclass(frozen=True)
class Total:
    """Bytes the whole plan writes."""

    nbytes: int


@dataclass(frozen=True)
class FileStart:
    """An image starts: ``base`` bytes of the plan were written before it, it has ``size``."""

    base: int
    size: int


@dataclass(frozen=True)
class Chunk:
    """esptool's progress within the current image: ``n`` of ``total`` blocks."""

    n: int
    total: int


@dataclass(frozen=True)
class Written:
    """An image is written: ``done`` bytes of the plan so far."""

    done: int


@dataclass(frozen=True)
class Finished:
    result: BoardResult


FlashEvent = Stage | Note | Identity | Total | FileStart | Chunk | Written | Finished
