"""``scfleet accounts seed``: ``--count`` past the project's scale (a million devices, one
account each) is a one-line usage error, and Ctrl-C on a long seed ends it at once, storing
nothing (all or nothing: the passwords would exist nowhere else). Found by probe19:
``--count 99999999999`` ran until Ctrl-C. The Ctrl-C case guards the all-or-nothing promise;
it passed on the code before its change too (run at 9808c9b: exit 105 within 5 s, nothing
stored), so the queued hashes the ``with`` was thought to wait for did not show.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scfleet import cli
from scfleet_core.errors import EXIT_INTERRUPTED
from scfleet_core.limits import MAX_ACCOUNTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(20)  # before: ran until memory or patience ran out
@pytest.mark.parametrize("count", ["99999999999", str(MAX_ACCOUNTS + 1), "0"])
def test_a_count_past_the_bound_is_a_usage_error(
    count: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["accounts", "seed", "--data-dir", str(tmp_path / "d"), "--count", count]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--csv", str(tmp_path / "a.csv")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--count" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_ctrl_c_ends_a_long_seed_at_once_and_stores_nothing(tmp_path: Path) -> None:
    data, csv = tmp_path / "d", tmp_path / "a.csv"
    # 20,000 hashes at the default cost: minutes on two cores
    proc = subprocess.Popen(
        [sys.executable, "-m", "scfleet", "accounts", "seed", "--data-dir", str(data)]
        + ["--count", "20000", "--csv", str(csv)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3.0)  # well into hashing
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err == "scfleet: interrupted\n" and out == ""
    assert waited < 5.0, waited  # before: 30 s and more (the queue of hashes)
    assert not csv.exists()
    users = data / "users.sqlite"
    if users.exists():
        with sqlite3.connect(users) as db:
            tables = [
                r[0] for r in db.execute("select name from sqlite_master where type = 'table'")
            ]
            for table in tables:
                assert db.execute(f"select count(*) from {table}").fetchone() == (0,)
