"""A firmware, image or Wi-Fi key file that never ends (``/dev/zero``) or is larger than any
board's flash (or any Wi-Fi key) is one line naming it, not a read of all of it.

Found by hand (probe19): ``scfleet hw flash --port P --firmware /dev/zero`` (or ``--image
0x1000:/dev/zero``) read until the kernel's OOM killer ended it (exit 137) on a machine shared
with others; a Wi-Fi key file is read whole the same way (``hw flash``, ``hw provision``, a
run's ``[boards] wifi_key_file``). The tests use sparse files just past each cap, so the
unfixed read costs 32 MiB, not the machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hw_bridge.boardconfig import MAX_KEY_FILE_BYTES, read_wifi_key
from hw_bridge.flash.cli import MAX_IMAGE_BYTES
from scfleet import cli
from scfleet_core.errors import ConfigError

PORT = "socket://127.0.0.1:9"  # never reached: the files are refused first


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


@pytest.mark.parametrize("flag", ["--firmware", "--image"])
def test_a_file_larger_than_any_flash_is_refused(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = _sparse(tmp_path / "big.bin", MAX_IMAGE_BYTES + 1)
    value = str(big) if flag == "--firmware" else f"0x1000:{big}"
    assert cli.main(["hw", "flash", "--port", PORT, flag, value, "--no-app"]) == 104
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(big) in err, err
    assert f"larger than {MAX_IMAGE_BYTES // 2**20} MiB" in err, err


def test_the_caps_leave_room_for_any_real_one() -> None:
    assert MAX_IMAGE_BYTES >= 16 * 2**20  # an ESP32's largest usual flash
    assert MAX_KEY_FILE_BYTES >= 64  # WPA2: 8..63 characters, or 64 hex digits


def test_a_key_file_larger_than_any_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    _sparse(key, MAX_KEY_FILE_BYTES + 1)
    with pytest.raises(ConfigError, match="larger than any Wi-Fi key") as err:
        read_wifi_key(None, key, env_key="--wifi-key-env")
    assert str(key) in str(err.value)
    key.write_text("hunter2-passphrase\n")
    secret = read_wifi_key(None, key, env_key="--wifi-key-env")
    assert secret is not None and secret.reveal() == "hunter2-passphrase"
