"""The emulated MicroPython REPL, byte for byte, and the host's raw-REPL client against it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import serial

from hw_bridge import fsimage, repl
from hw_bridge.appmode import firmware_files, start_app_boards
from hw_bridge.emulator.server import BoardHandle

BANNER = b'MicroPython v1.26.0 on 2025-08-09; Generic ESP32 module with ESP32\r\nType "help()"'


class Wire:
    """A raw TCP client of the emulated UART that reads up to an expected marker."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            assert time.monotonic() < deadline, f"no {marker!r} in {self.buf!r}"
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            assert chunk, f"closed; got {self.buf!r}"
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        got, self.buf = self.buf[:i], self.buf[i:]
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def board() -> Iterator[BoardHandle]:
    with start_app_boards(1) as boards:
        yield boards[0]


def at_friendly_repl(h: BoardHandle) -> Wire:
    w = Wire(h.port)
    w.send(b'{"t":"exit","id":1}\n')
    w.until(b'"cmd":"exit"')
    w.until(BANNER)
    w.until(b"information.\r\n>>> ")
    return w


def test_raw_repl_and_raw_paste_bytes_match_micropython(board: BoardHandle) -> None:
    w = at_friendly_repl(board)
    try:
        w.send(b"\x01")
        assert w.until(b">") == b"\r\nraw REPL; CTRL-B to exit\r\n>"
        w.send(b"print(1+1)\x04")
        assert w.until(b">") == b"OK2\r\n\x04\x04>"
        w.send(b"x = [1]\nx[3]\x04")
        got = w.until(b"\x04>")
        assert got.startswith(b"OK\x04Traceback (most recent call last):\r\n")
        assert b'  File "<stdin>", line 2, in <module>\r\nIndexError: ' in got
        # raw-paste: "R\x01", window = 256/2 little-endian, then one \x01 per window consumed
        w.send(b"\x05A\x01")
        assert w.until(b"R\x01", 2) == b"R\x01"
        assert w.until(b"\x01") == b"\x80\x00\x01"
        code = b"y = 0\n" * 50 + b"print(y + 7)"  # 312 bytes: two windows of 128 consumed
        w.send(code + b"\x04")
        assert w.until(b"\x04>") == b"\x01\x01\x047\r\n\x04\x04>"
        assert board.board.repl.raw_paste_execs == 1
        # Ctrl-D on an empty line: soft reset that skips main.py (no new app boot)
        boots = board.board.boots
        w.send(b"\x04")
        assert w.until(b">") == b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>"
        assert board.board.boots == boots
        # Ctrl-B: friendly REPL, which evaluates and echoes
        w.send(b"\x02")
        assert w.until(b">>> ").startswith(b"\r\n" + BANNER)
        w.send(b"2+3\r")
        assert w.until(b">>> ") == b"2+3\r\n5\r\n>>> "
        # Ctrl-D there: soft reboot runs main.py, i.e. the app again
        w.send(b"\x04")
        assert w.until(b"soft reboot\r\n") == b"\r\nMPY: soft reboot\r\n"
        assert b'"t":"hello"' in w.until(b"\n")
        assert board.board.boots == boots + 1
    finally:
        w.close()


def test_board_can_refuse_raw_paste(board: BoardHandle) -> None:
    board.board.repl.raw_paste = False
    w = at_friendly_repl(board)
    try:
        w.send(b"\x01")
        w.until(b"raw REPL; CTRL-B to exit\r\n>")
        w.send(b"\x05A\x01")
        assert w.until(b">") == b"R\x00>"  # stays in the raw REPL, as pyexec.c does
        w.send(b"print('plain')\x04")
        assert w.until(b"\x04>") == b"OKplain\r\n\x04\x04>"
        assert board.board.repl.raw_paste_execs == 0
    finally:
        w.close()


@pytest.mark.slow
def test_client_file_operations_persist_in_flash_across_a_hard_reset(board: BoardHandle) -> None:
    ser = serial.serial_for_url(board.url, timeout=0.05)
    try:
        repl.stop_app(ser, 2)
        repl.enter_raw_repl(ser, 3)
        repl.make_dirs(ser, ["/lib", "/lib/sub"], 3)
        data = bytes(range(256)) * 20  # every byte value survives the bytes literals
        assert repl.write_file(ser, "/lib/sub/blob.bin", data, 3, chunk=1000) is True
        digests, used = repl.file_digests(ser, ["/lib/sub/blob.bin", "/nope.py"], 3)
        assert used and digests["/nope.py"] is None
        import hashlib

        assert digests["/lib/sub/blob.bin"] == "h:" + hashlib.sha256(data).hexdigest()
        out, _ = repl.exec_raw(
            ser, "import os\nprint(os.listdir('/lib'), os.stat('/lib/sub/blob.bin')[6])", 3
        )
        assert out.strip() == b"['sub'] 5120"
        with pytest.raises(repl.ReplExecError, match="ENOENT"):
            repl.exec_raw(ser, "open('/missing.txt')", 3)
        with pytest.raises(repl.ReplExecError, match="AttributeError"):  # as on a board
            repl.exec_raw(ser, "import hashlib\nhashlib.sha256(b'').hexdigest()", 3)
        repl.soft_reset_raw(ser, 3)  # back in the raw REPL, main.py skipped
        out, _ = repl.exec_raw(ser, "print(len(open('/lib/sub/blob.bin','rb').read()))", 3)
        assert out.strip() == b"5120"
    finally:
        ser.close()
    board.reset(download=False)
    files = fsimage.read_image(board.call(lambda b: bytes(b.flash[0x200000:])))
    assert files["/lib/sub/blob.bin"] == data
    assert files["/main.py"] == firmware_files()["/main.py"]


@pytest.mark.slow
def test_deploy_recovers_a_board_left_in_the_raw_repl(board: BoardHandle) -> None:
    from hw_bridge import deploy

    w = at_friendly_repl(board)  # an aborted session: raw REPL, half a command typed
    w.send(b"\x01")
    w.until(b"raw REPL; CTRL-B to exit\r\n>")
    w.send(b"print('half")
    w.close()
    r = deploy.deploy_board(board.url, firmware_files(), timeout=1)
    assert r.ok and r.written == [] and r.fw == "0.1.0", r.error
