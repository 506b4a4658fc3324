"""``scfleet hw deploy`` against emulated boards running the firmware app: changed files only,
raw-paste or plain raw REPL, the app restarted with the new files, the config (and its Wi-Fi key)
left alone, and a board that stops answering failing with one line naming its port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware import app_files
from hw_bridge import deploy, deploy_cli, fsimage, repl
from hw_bridge.appmode import firmware_files, start_app_boards
from hw_bridge.emulator.server import BoardHandle
from hw_bridge.link import SerialLink
from scfleet.cli import main as scfleet_main

pytestmark = pytest.mark.slow  # starts emulated boards and servers for seconds

N_FILES = len(app_files())  # what deploy compares on the board
KEY = "d3pl0y-w1f1-K3y-never-shown"
CONFIG = json.dumps({"v": 1, "device_id": "esp32-dep-001", "wifi_key": KEY}).encode()
NEW_VERSION = b'FW_VERSION = "0.1.1-dev"'


@pytest.fixture
def board() -> Iterator[BoardHandle]:
    with start_app_boards(1, files={**firmware_files(), "/scfw_config.json": CONFIG}) as boards:
        yield boards[0]


def board_files(h: BoardHandle) -> dict[str, bytes]:
    return fsimage.read_image(h.call(lambda b: bytes(b.flash[0x200000:])))


def app_dir(tmp_path: Path, *, version: bytes = NEW_VERSION, extra: bool = False) -> Path:
    """The firmware's files with proto.py's version changed, plus a config that must not land."""
    root = tmp_path / "app"
    for path, data in firmware_files().items():
        dst = root / path.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if path == "/scfw/proto.py":
            data = data.replace(b'FW_VERSION = "0.1.0"', version)
            assert version in data
        dst.write_bytes(data)
    if extra:
        (root / "scfw" / "notes.txt").write_bytes(b"x" * 3000)
    (root / "scfw_config.json").write_bytes(b'{"wifi_key": "overwritten"}')
    return root


async def hello(url: str) -> dict[str, object]:
    link = SerialLink(url)
    await link.open()
    try:
        return await link.request("hello", 3)
    finally:
        await link.close()
        link.shutdown()


def test_deploy_changes_a_file_and_the_app_restarts_with_it(
    board: BoardHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = app_dir(tmp_path)
    code = scfleet_main(
        ["hw", "deploy", board.url, "--py", "--app-dir", str(src), "--timeout", "3"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{board.url}: wrote 1 files" in out and "raw-paste" in out
    assert f"{N_FILES - 1} unchanged (sha256)" in out and "app restarted, fw 0.1.1-dev" in out
    assert KEY not in out + err
    files = board_files(board)
    assert NEW_VERSION in files["/scfw/proto.py"]
    assert files["/scfw_config.json"] == CONFIG  # not overwritten without --overwrite-config
    assert not [p for p in files if p.endswith(".tmp")]
    assert board.board.boots == 2 and board.board.repl.raw_paste_execs > 0
    reply = asyncio.run(hello(board.url))  # the restarted app speaks the protocol
    assert reply["fw"] == "0.1.1-dev" and reply["device_id"] == "esp32-dep-001"

    # a second deploy of the same files writes nothing, and still restarts the app
    execs = board.board.repl.execs
    code = scfleet_main(
        ["hw", "deploy", board.url, "--py", "--app-dir", str(src), "--timeout", "3"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote 0 files (0 B" in out and f"{N_FILES} unchanged" in out
    assert board.board.repl.execs == execs + 1  # only the hashing ran
    assert board.board.boots == 3


def test_plain_raw_repl_when_the_board_refuses_raw_paste(
    board: BoardHandle, tmp_path: Path
) -> None:
    board.board.repl.raw_paste = False
    files = deploy_cli.load_files(app_dir(tmp_path, version=b'FW_VERSION = "0.2.0"', extra=True))
    r = deploy.deploy_board(board.url, files, timeout=3)
    assert r.ok, r.error
    assert r.raw_paste is False and board.board.repl.raw_paste_execs == 0
    assert r.written == ["/scfw/notes.txt", "/scfw/proto.py"] and r.fw == "0.2.0"
    assert board_files(board)["/scfw/notes.txt"] == b"x" * 3000


def test_deploy_never_reads_or_writes_the_config_unless_asked(
    board: BoardHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    real = repl.exec_raw

    def spy(ser: object, code: str | bytes, *a: object, **kw: object) -> object:
        sent.append(code.decode() if isinstance(code, bytes) else code)
        return real(ser, code, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(repl, "exec_raw", spy)
    files = deploy_cli.load_files(app_dir(tmp_path), overwrite_config=False)
    assert deploy.deploy_board(board.url, files, timeout=3, force=True).ok
    commands = [c for c in sent if not c.startswith("w(")]  # not the file contents sent
    assert commands and not [c for c in commands if "scfw_config" in c]
    assert board_files(board)["/scfw_config.json"] == CONFIG
    files = deploy_cli.load_files(app_dir(tmp_path), overwrite_config=True)
    r = deploy.deploy_board(board.url, files, timeout=3, reset=False)
    assert r.ok and "/scfw_config.json" in r.written and r.fw is None
    assert board_files(board)["/scfw_config.json"] == b'{"wifi_key": "overwritten"}'


def test_a_board_that_stops_answering_fails_with_one_line_naming_the_port(
    board: BoardHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    board.board.repl.stall_after_execs = 3  # hash, mkdir, open: then silence
    before = board_files(board)
    src = app_dir(tmp_path, extra=True)
    t0 = time.monotonic()
    code = scfleet_main(
        ["hw", "deploy", board.url, "--py", "--app-dir", str(src), "--timeout", "1"]
    )
    out, err = capsys.readouterr()
    assert code == 1 and time.monotonic() - t0 < 10
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"scfleet: {board.url}: writing /scfw/notes.txt: ")
    assert "board stopped answering" in lines[0]
    assert board.board.repl.stalled
    after = board_files(board)  # nothing half-written replaced a file
    assert after["/scfw/proto.py"] == before["/scfw/proto.py"]
    assert "/scfw/notes.txt" not in after


def test_several_ports_one_dead(board: BoardHandle, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"socket://127.0.0.1:{s.getsockname()[1]}"
    code = scfleet_main(["hw", "deploy", board.url, dead, "--py", "--timeout", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{board.url}: wrote 0 files" in out and f"{N_FILES} unchanged" in out
    assert f"{dead}: FAILED: cannot open" in err and "1 of 2 boards failed" in err


def test_deploy_over_rfc2217_as_to_a_remote_bench(tmp_path: Path) -> None:
    with start_app_boards(1, protocol="rfc2217") as boards:
        h = boards[0]
        files = deploy_cli.load_files(app_dir(tmp_path, version=b'FW_VERSION = "0.3.0"'))
        r = deploy.deploy_board(h.url, files, timeout=3)
        assert r.ok, r.error
        assert r.written == ["/scfw/proto.py"] and r.raw_paste and r.fw == "0.3.0"
        assert h.board.boots == 2 and h.board.mode == "app"  # soft reset, never a hard one


def test_deploy_ships_mpy_for_the_boards_micropython(
    board: BoardHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Default: scfw/*.py go as .mpy built by mpy-cross for the version the board reports
    (the emulator says 1.26.0: format 6.3); the .py files are removed (they would shadow the
    .mpy on import) and the emulated board runs the app from the .mpy (mapped to its source)."""
    code = scfleet_main(["hw", "deploy", board.url, "--timeout", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    files = board_files(board)
    mods = [p for p in firmware_files() if p.startswith("/scfw/")]
    assert all(p[:-3] + ".mpy" in files and p not in files for p in mods), sorted(files)
    assert files["/scfw/app.mpy"][:2] == b"M\x06" and files["/main.py"].startswith(b"#")
    assert "app restarted, fw 0.1.0" in out
    reply = asyncio.run(hello(board.url))
    assert reply["fw"] == "0.1.0" and reply["device_id"] == "esp32-dep-001"
