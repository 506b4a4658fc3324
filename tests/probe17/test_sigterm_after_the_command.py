"""A SIGTERM that lands after the command gave ``main`` its handler back, before ``main``
settles (ignores) the signals, must not kill the process.

CI (b5364bc, 1 run of the burst in test_repeated_sigterm.py) saw exit -2: ours raised its one
KeyboardInterrupt in ``main``'s ``finally``, outside the ``except`` that turns it into exit
105, and Python ended the process by SIGINT. Here the signal is raised at exactly that moment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import signal, sys
from scfleet import cli

first = cli._Interrupts.settle
done = []

def settle(self):
    if not done:  # the first settle, in main's finally: a SIGTERM lands just before it
        done.append(1)
        signal.raise_signal(signal.SIGTERM)
    first(self)

cli._Interrupts.settle = settle
sys.argv = ["scfleet", "inspect", "configs/smoke.toml"]
sys.exit(cli.main())
"""


def test_a_sigterm_between_the_command_and_the_settle_does_not_kill_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
