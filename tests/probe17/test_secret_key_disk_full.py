"""A signing key whose write fails (disk full) leaves no ``secret.key`` behind: the next start,
once there is room, makes a whole key and serves.

Found by probe17: the key file was created first and written after, so a disk that filled
between the two left it empty; every later start then refused with "signing key shorter than
16 bytes" until someone found and deleted the file by hand. Here the full disk is a per-file
size limit (``RLIMIT_FSIZE``, no root needed) of 0 bytes (a file can be made, not written)
and of 10 bytes (a key cut short).
"""

from __future__ import annotations

import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_server.sessions import KEY_FILE_NAME
from scfleet.embedded import EmbeddedServer

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _room_for(limit: int) -> Callable[[], None]:
    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return small_files


@pytest.mark.timeout(120)
@pytest.mark.parametrize("limit", [0, 10])  # nothing written; a cut key
def test_a_key_write_that_fails_leaves_no_stump_and_the_next_start_serves(
    limit: int,
    tmp_path: Path,
    scfleet: Cli,
    free_port: int,
    reference_server: Callable[[Path], EmbeddedServer],
) -> None:
    data = tmp_path / "data"
    full = scfleet(
        "serve",
        "--data-dir",
        str(data),
        "--port",
        str(free_port),
        timeout=90,
        preexec_fn=_room_for(limit),
    )
    assert "Traceback" not in full.stderr, full.stderr
    assert full.returncode not in (0, 1), full.stderr
    (line,) = full.stderr.splitlines()
    assert str(data / KEY_FILE_NAME) in line and "File too large" in line, line
    assert not (data / KEY_FILE_NAME).exists()  # no empty key to trip over later

    server = reference_server(data)  # the disk has room again
    assert server.url.startswith("http://127.0.0.1:")
    key = (data / KEY_FILE_NAME).read_bytes().strip()
    assert len(key) == 64, key
    assert (data / KEY_FILE_NAME).stat().st_mode & 0o777 == 0o600
