"""Die with the parent: nothing the reference server starts may outlive what started it.

A process killed with SIGKILL runs no cleanup, so its children must notice on their own. Two
guards, either sufficient: on Linux ``prctl(PR_SET_PDEATHSIG)`` has the kernel signal us when the
parent dies; everywhere a daemon thread polls ``getppid()`` (re-parenting means the parent is
gone). The embedded server also watches a pipe from its parent (see ``--watch-stdin``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def _set_pdeathsig(sig: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Send ourselves ``sig`` as soon as ``parent_pid`` is no longer our parent."""
    _set_pdeathsig(sig)
    if os.getppid() != parent_pid:  # it died before the guard was set
        os.kill(os.getpid(), sig)
        return

    def watch() -> None:
        event = threading.Event()
        while not event.wait(POLL_S):
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), sig)
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
