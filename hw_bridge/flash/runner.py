"""The parallel runner: one worker process per board, their events rendered as they come, one
board failing never stopping the others."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from hw_bridge.flash.jobs import BoardResult, Finished, FlashJob, Tuning
from hw_bridge.flash.view import ProgressView


def flash_boards(
    jobs: Sequence[FlashJob],
    *,
    tuning: Tuning | None = None,
    display: str = "auto",
    stream: IO[str] | None = None,
) -> list[BoardResult]:
    """Flash every job in parallel, one spawned process per board; results in job order.

    ``display``: ``"auto"`` (rich bars on a terminal, plain lines otherwise), ``"rich"``,
    ``"plain"`` or ``"none"``.
    """
    from hw_bridge.flash.worker import run_worker

    tuning = tuning or Tuning()
    out = stream or sys.stdout
    if display == "auto":
        display = "rich" if getattr(out, "isatty", lambda: False)() else "plain"
    ctx: Any = mp.get_context(tuning.start_method)
    if tuning.start_method == "forkserver":
        ctx.set_forkserver_preload(
            ["esptool.cmds", "hw_bridge.flash.worker", "hw_bridge.fsimage", "littlefs"]
        )
    events = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="scfleet-esptool-") as tmp:
        cfg_path = str(Path(tmp) / "esptool.cfg")
        Path(cfg_path).write_text(tuning.cfg_text())
        procs = {
            job.port: ctx.Process(
                target=run_worker,
                args=(job, events, cfg_path, tuning),
                name=f"flash-{job.port}",
                daemon=True,
            )
            for job in jobs
        }
        for p in procs.values():
            p.start()
        view = ProgressView(display, [j.port for j in jobs], out)
        results: dict[str, BoardResult] = {}
        try:
            while len(results) < len(jobs):
                try:
                    port, event = events.get(timeout=0.5)
                except queue_mod.Empty:
                    for port_name, p in procs.items():
                        if (
                            port_name not in results
                            and not p.is_alive()
                            and p.exitcode not in (0, None)
                        ):
                            results[port_name] = BoardResult(
                                port=port_name, ok=False, error=f"worker died (exit {p.exitcode})"
                            )
                            view.finish(results[port_name])
                    continue
                if isinstance(event, Finished):
                    results[port] = event.result
                    view.finish(event.result)
                else:
                    view.event(port, event)
        finally:
            view.close()
            for p in procs.values():
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
    return [results[j.port] for j in jobs]
