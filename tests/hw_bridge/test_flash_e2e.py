"""The real esptool (v5, through its Python API in one spawned process per board) against
emulated ESP32 boards: parallel writes, verification, read-back, failures, boot into the app."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hw_bridge import flash, fsimage, images
from hw_bridge.emulator.board import BoardFiles, SerialPort
from hw_bridge.emulator.rom import Faults
from hw_bridge.emulator.server import BoardHandle, start_emulated_boards
from hw_bridge.testing import wait_until
from scfleet.cli import main as scfleet_main
from scfleet_core.secrets import Secret

pytestmark = pytest.mark.slow

FAST = flash.Tuning(
    timeout=1.0, connect_attempts=2, erase_write_timeout_per_mb=1.0, md5_timeout_per_mb=1.0
)
APP = {
    "/main.py": b"import scfw.app\nscfw.app.main()\n",
    "/scfw/app.py": b"def main():\n    pass\n",
}
WIFI_KEY = "correct-horse-battery"


@pytest.fixture(scope="module")
def firmware() -> bytes:
    return images.make_test_image(1_500_000)


class Booted:
    """An app_runner that records what each board found on its filesystem."""

    def __init__(self) -> None:
        self.files: dict[str, BoardFiles] = {}

    async def __call__(self, files: BoardFiles, serial: SerialPort) -> None:
        self.files[files.board_name] = files
        serial.write(b"app up\r\n")
        await asyncio.sleep(3600)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    wait_until(predicate, timeout, lambda: "condition not met")


def job(h: BoardHandle, n: int, fw: bytes, **kw: object) -> flash.FlashJob:
    base: dict[str, object] = dict(
        port=h.url,
        index=n,
        firmware=flash.Image(0, fw, "micropython.bin"),
        app_files=APP,
        config=flash.BoardConfig("esp32-{n:06d}", "http://127.0.0.1:9/", "bench", Secret(WIFI_KEY)),
        baud=460800,
    )
    base.update(kw)
    return flash.FlashJob(**base)  # type: ignore[arg-type]


@pytest.fixture
def booted() -> Booted:
    return Booted()


@pytest.fixture
def four(booted: Booted) -> Iterator[list[BoardHandle]]:
    with start_emulated_boards(4, app_runner=booted) as boards:
        yield list(boards)


def test_four_boards_in_parallel_write_verify_read_back_and_boot(
    four: list[BoardHandle], booted: Booted, firmware: bytes
) -> None:
    read_cap = 64 * 1024
    jobs = [job(h, i + 1, firmware, read_back=read_cap) for i, h in enumerate(four)]
    results = flash.flash_boards(jobs, tuning=FAST, display="none")
    assert [r.error for r in results] == [""] * 4
    for h, r in zip(four, results, strict=True):
        assert r.ok and r.verified and r.chip == "ESP32" and r.mac == h.board.mac_str
        assert [a for a, _ in r.regions] == [0x1000, 0x200000]
        fw_sha = hashlib.sha256(firmware[:read_cap]).hexdigest()
        assert r.read_back_sha256[0] == fw_sha
        flash_bytes = h.call(lambda b: bytes(b.flash))
        assert flash_bytes[0x1000 : 0x1000 + len(firmware)] == firmware
        fs_bytes = flash_bytes[0x200000:]
        assert r.read_back_sha256[1] == hashlib.sha256(fs_bytes[:read_cap]).hexdigest()
        files = fsimage.read_image(fs_bytes)
        assert files["/main.py"] == APP["/main.py"]
    # socket:// has no RTS: ending the session is the hard reset, and the board boots the app.
    wait_for(lambda: len(booted.files) == 4)
    for i, h in enumerate(four, start=1):
        seen = booted.files[h.board.name]
        assert seen.vfs_offset == 0x200000 and seen.block_count == 512
        assert seen["/scfw/app.py"] == APP["/scfw/app.py"]
        config = seen["/scfw_config.json"].decode()
        assert f'"device_id": "esp32-{i:06d}"' in config and WIFI_KEY in config
        assert h.board.mode == "app"


def test_uncompressed_write_with_esptool_untouched(firmware: bytes) -> None:
    # lazy_trace=False: not even esptool's trace formatting is altered in this worker.
    with start_emulated_boards(1) as boards:
        h = boards[0]
        small = firmware[:200_000]
        [r] = flash.flash_boards(
            [job(h, 1, small, compress=False, app_files=None, config=None)],
            tuning=dataclasses.replace(FAST, lazy_trace=False),
            display="none",
        )
        assert r.ok, r.error
        assert h.call(lambda b: bytes(b.flash[0x1000 : 0x1000 + len(small)])) == small


def test_rfc2217_reset_lines_download_mode_and_hard_reset_boot(
    booted: Booted, firmware: bytes
) -> None:
    # The board powers up running its (blank) flash; esptool's DTR/RTS dance over RFC 2217
    # puts it into download mode and its RTS pulse afterwards boots the new app.
    with start_emulated_boards(1, protocol="rfc2217", app_runner=booted) as boards:
        h = boards[0]
        assert h.board.mode == "halted"  # blank flash: "invalid header"
        [r] = flash.flash_boards(
            [job(h, 7, firmware[: 64 * 1024], baud=115200)], tuning=FAST, display="none"
        )
        assert r.ok, r.error
        wait_for(lambda: h.board.name in booted.files)
        assert booted.files[h.board.name]["/main.py"] == APP["/main.py"]
        assert "download mode" in h.board.events


def test_bad_checksum_and_stalled_board_fail_alone(firmware: bytes) -> None:
    faults = {0: Faults(corrupt_block=5), 1: Faults(stall_after_blocks=10)}
    with start_emulated_boards(3, faults=faults) as boards:
        jobs = [job(h, i + 1, firmware) for i, h in enumerate(boards)]
        t0 = time.monotonic()
        bad, stalled, good = flash.flash_boards(jobs, tuning=FAST, display="none")
        assert time.monotonic() - t0 < 60
        assert not bad.ok and "Bad data checksum" in bad.error, bad.error
        assert bad.error.startswith("write failed")
        assert not stalled.ok, stalled.error
        assert stalled.error.startswith("write failed: board stopped answering (writing at 0x")
        assert good.ok and good.verified, good.error
        stuck = boards[1].board
        assert stuck.loader is not None and stuck.loader.stalled and stuck.mode == "download"
        assert boards[0].board.mode == "download"  # esptool gave up: no reset, no boot
        wait_for(lambda: boards[2].board.mode == "app")


def test_one_corrupted_packet_is_retried_by_esptool(firmware: bytes) -> None:
    with start_emulated_boards(1, faults={0: Faults(corrupt_block=3, corrupt_times=1)}) as boards:
        [r] = flash.flash_boards(
            [job(boards[0], 1, firmware[:300_000])], tuning=FAST, display="none"
        )
        assert r.ok, r.error
        assert boards[0].board.faults.corrupted == 1


def test_cli_flash_reports_table_exit_code_and_hides_the_key(
    tmp_path: Path,
    firmware: bytes,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fw = tmp_path / "micropython.bin"
    fw.write_bytes(firmware[:200_000])
    app = tmp_path / "app"
    (app / "scfw").mkdir(parents=True)
    (app / "main.py").write_bytes(APP["/main.py"])
    (app / "scfw" / "app.py").write_bytes(APP["/scfw/app.py"])
    monkeypatch.setenv("SC_WIFI_KEY", WIFI_KEY)
    with start_emulated_boards(2, faults={1: Faults(corrupt_block=0)}) as boards:
        code = scfleet_main(
            ["hw", "flash", "--port", boards[0].url, "--port", boards[1].url,
             "--firmware", str(fw), "--app-dir", str(app), "--wifi-ssid", "bench",
             "--wifi-key-env", "SC_WIFI_KEY", "--timeout", "1", "--connect-attempts", "2"]
        )  # fmt: skip
        out, err = capsys.readouterr()
        assert code == 1
        assert "1 of 2 boards failed" in err and boards[1].url in err
        assert boards[0].url in out and "yes" in out and "Bad data checksum" in out
        assert WIFI_KEY not in out + err
        files = fsimage.read_image(boards[0].call(lambda b: bytes(b.flash[0x200000:])))
        assert WIFI_KEY in files["/scfw_config.json"].decode()
        # the app went as bytecode for the image's MicroPython (its banner says 1.26.0)
        assert files["/scfw/app.mpy"][:2] == b"M\x06" and "/scfw/app.py" not in files


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00" * 100)
    assert (
        scfleet_main(["hw", "flash", "--port", "socket://127.0.0.1:1", "--firmware", str(bad)])
        == 104
    )
    assert "not an ESP image" in capsys.readouterr().err
    code = scfleet_main(
        ["hw", "flash", "--port", "socket://127.0.0.1:1", "--image", "0x10:nope.bin"]
    )
    assert code == 104


def test_firmware_for_another_chip_fails_that_board(firmware: bytes) -> None:
    s3 = images.make_test_image(100_000, chip="ESP32-S3")
    with start_emulated_boards(1) as boards:
        [r] = flash.flash_boards([job(boards[0], 1, s3)], tuning=FAST, display="none")
        assert not r.ok and r.chip == "ESP32"
        assert "built for ESP32-S3, but the board is ESP32" in r.error
        assert boards[0].board.data_blocks == 0  # nothing was written


def test_default_app_runner_prints_a_banner_and_the_files() -> None:
    import socket

    fw = images.make_test_image(100_000)
    fs = fsimage.build_image({"/main.py": b"print(1)\n"}, size=0x200000)
    with start_emulated_boards(1) as boards:
        h = boards[0]

        def factory_flash(b: object) -> None:
            b.flash[0x1000 : 0x1000 + len(fw)] = fw  # type: ignore[attr-defined]
            b.flash[0x200000:] = fs  # type: ignore[attr-defined]

        h.call(factory_flash)
        with socket.create_connection(("127.0.0.1", h.port), timeout=5) as sock:
            wait_for(lambda: h.board.busy)
            h.reset(download=False)
            seen = b""
            while b">>> " not in seen:
                chunk = sock.recv(4096)
                assert chunk
                seen += chunk
        text = seen.decode()
        assert "boot:0x13 (SPI_FAST_FLASH_BOOT)" in text
        assert "MicroPython v1." in text and "/main.py (9 B)" in text


def test_esptool_command_line_erase_region_and_read_flash(tmp_path: Path) -> None:
    import subprocess
    import sys

    with start_emulated_boards(1) as boards:
        h = boards[0]
        h.call(lambda b: b.flash.__setitem__(slice(0x3000, 0x5000), b"\x5a" * 0x2000))
        # socket:// carries no RTS, so by default ending a session that wrote flash "hard
        # resets" the board; this bench keeps the stub running across sessions instead.
        h.call(lambda b: setattr(b, "boot_on_disconnect", False))
        out = tmp_path / "read.bin"
        base = [sys.executable, "-m", "esptool", "--port", h.url, "--before", "no-reset"]
        run = subprocess.run(
            [*base, "--after", "no-reset-stub", "erase-region", "0x4000", "0x1000"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        # The stub is still running: esptool notices (SYNC value 0) and does not re-upload it.
        run = subprocess.run(
            [*base, "--after", "no-reset", "read-flash", "0x3000", "0x2000", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Stub flasher is already running" in run.stdout
        assert out.read_bytes() == b"\x5a" * 0x1000 + b"\xff" * 0x1000
        assert h.board.mode == "download" and h.board.loader is not None
        assert not h.board.loader.stub  # --after no-reset took the chip back to the ROM


def test_unreachable_port_fails_after_a_retry(free_port: int, firmware: bytes) -> None:
    with start_emulated_boards(1) as boards:
        dead = f"socket://127.0.0.1:{free_port}"
        good, bad = flash.flash_boards(
            [job(boards[0], 1, firmware[:100_000]), flash.FlashJob(port=dead, index=2)],
            tuning=FAST,
            display="none",
        )
        assert good.ok, good.error
        assert not bad.ok and bad.error.startswith("could not connect: Could not open")
