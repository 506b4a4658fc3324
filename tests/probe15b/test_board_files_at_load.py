"""The files ``[boards]`` names (``registry``, ``wifi_key_file``) and its ``wifi_key_env`` are
checked when the scenario file is loaded, like every other key: before, they were read only
once the run started — after the target had been contacted — so ``scfleet inspect`` passed
them (exit 0), ``scfleet run`` against an unreachable target said "cannot reach" (exit 103)
instead of naming the missing key file, and a key file or registry that was not UTF-8 ended
the run in a ``UnicodeDecodeError`` traceback (exit 1).
"""

from __future__ import annotations

import pathlib

import pytest

from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG

REFUSED = "http://127.0.0.1:9"  # nothing listens: a run that gets past loading exits 103
BASE = """
[scenarios.a]
executor = "constant-arrival-rate"
rate = 10
duration = "2s"
pre_allocated_devices = 2
[scenarios.a.device]
kind = "iot_upload"
chunk_bytes = 64
[boards]
ports = ["emulated:1"]
wifi_ssid = "lab"
"""
KEY = "hunter2-secret-key"
CASES = {
    # id: (extra [boards] line, files to write {name: bytes}, what the error names)
    "key-file-missing": ('wifi_key_file = "nokey"', {}, "nokey"),
    "key-file-not-utf8": ('wifi_key_file = "key"', {"key": b"\xff\xfe" + KEY.encode()}, "key"),
    "key-env-unset": ('wifi_key_env = "SCFLEET_PROBE15B_UNSET"', {}, "boards.wifi_key_env"),
    "registry-missing": ('registry = "noreg.toml"', {}, "noreg.toml"),
    "registry-bad-toml": ('registry = "reg.toml"', {"reg.toml": b"[[board"}, "reg.toml"),
    "registry-not-utf8": ('registry = "reg.toml"', {"reg.toml": b"\xff\xfe[[board]]"}, "reg.toml"),
    "registry-bad-entry": (
        'registry = "reg.toml"',
        {"reg.toml": b'[[board]]\nport = 5\ndevice_id = "x"\n'},
        "board[0]",
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["run", "inspect"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_board_file_is_a_config_error_at_load(
    case: str,
    command: str,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line, files, names = CASES[case]
    monkeypatch.delenv("SCFLEET_PROBE15B_UNSET", raising=False)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    cfg = tmp_path / "boards.toml"
    cfg.write_text(BASE + line + "\n")
    out = tmp_path / "run"
    argv = [command, str(cfg), "--target", REFUSED]
    if command == "run":
        argv += ["--out", str(out), "--quiet"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    lines = err.strip("\n").split("\n")
    assert code == EXIT_INVALID_CONFIG, f"exit {code}: {err[-600:]}"
    assert len(lines) == 1, err
    assert names in lines[0], lines[0]
    assert KEY not in err and "hunter2" not in err
    assert not out.exists()
