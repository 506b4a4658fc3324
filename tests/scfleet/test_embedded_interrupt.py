"""The embedded server never outlives a start that was interrupted (Ctrl-C while it boots).

``with EmbeddedServer(...)`` whose start is interrupted never reaches ``__exit__``; the started
process held its lifeline (stdin) open through ``self.proc``, so it went on serving until the
test or program ended."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from scfleet.embedded import EmbeddedServer
from simulator.config import EmbeddedServerConfig


def _gone(pid: int) -> bool:
    """Not running (reaped, or a zombie nobody reaps yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow  # a reference server process started and stopped: ~1 s
def test_ctrl_c_while_the_embedded_server_starts_stops_it(tmp_path: Path) -> None:
    """Before: the server process was still running 10 s after the KeyboardInterrupt."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    srv = EmbeddedServer(tmp_path / "server", EmbeddedServerConfig())
    main = threading.main_thread().ident
    assert main is not None

    def press() -> None:  # Ctrl-C once the process exists, while start() waits for READY
        deadline = time.monotonic() + 30
        while srv.proc is None and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)

    presser = threading.Thread(target=press, daemon=True)
    try:
        presser.start()
        with pytest.raises(KeyboardInterrupt), srv:
            pytest.fail("started before the interrupt came")  # pragma: no cover
        presser.join(10)
        assert srv.proc is not None and srv.url == ""  # interrupted inside start()
        pid = srv.proc.pid
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), f"the embedded server (pid {pid}) outlived its interrupted start"
    finally:
        signal.signal(signal.SIGINT, old)
        srv.stop()
