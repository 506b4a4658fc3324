"""An accounts file (``accounts_csv``) that never ends a line (``/dev/zero``, a pipe) is one
line naming it, read no further than a line's cap.

Found by hand (probe19): ``accounts_csv = "/dev/zero"`` on an auth_flow scenario read its first
line until memory ran out: a ``MemoryError`` traceback under ``ulimit -v`` (exit 1), the OOM
killer without. The test feeds a FIFO 64 MiB without a newline and counts what was read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from scfleet_core.errors import ConfigError
from simulator.run.devices import load_accounts

FED = 64 * 2**20


@pytest.mark.timeout(60)
def test_an_endless_first_line_is_refused_early(tmp_path: Path) -> None:
    fifo = tmp_path / "accounts.csv"
    os.mkfifo(fifo)
    written = [0]

    def feed() -> None:
        chunk = b"a" * 2**16
        try:
            with open(fifo, "wb") as fh:
                while written[0] < FED:
                    fh.write(chunk)
                    written[0] += len(chunk)
        except BrokenPipeError:  # the reader stopped: what we want
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with pytest.raises(ConfigError) as err:
        load_accounts(fifo, 1, "scenarios.a.device.accounts_csv")
    writer.join(10)
    assert str(fifo) in str(err.value) and "accounts_csv" in str(err.value), err.value
    assert written[0] < 8 * 2**20, f"read {written[0]} bytes of a line before refusing it"


def test_a_plain_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('username,password\nu1,"p,1"\nu2,p2\n')
    accounts = load_accounts(path, 2, "k")
    assert [a.username for a in accounts] == ["u1", "u2"]
    assert accounts[0].password.reveal() == "p,1"
