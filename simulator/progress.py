"""A one-line live progress display: rewritten in place on a terminal, a line every
few seconds otherwise (so CI logs stay readable)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from simulator.durations import format_duration


class LineProgress:
    def __init__(self, total: float, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self._last_plain = -1e9
        self._shown = False

    def __call__(self, env: Any, point: dict[str, Any]) -> None:
        reqs = sum(s["requests"] for s in point["scenarios"].values())
        failed = sum(s["failed"] for s in point["scenarios"].values())
        dropped = sum(s["dropped"] for s in point["scenarios"].values())
        p95 = max((s["p95_ms"] for s in point["scenarios"].values()), default=0.0)
        rps = reqs / point["span"] if point["span"] else 0.0
        err = failed / reqs * 100 if reqs else 0.0
        t = point["t"]
        line = (
            f"running {format_duration(t)}/{format_duration(self.total)}  "
            f"devices={point['active']}  req/s={rps:.0f}  p95={p95:.1f}ms  "
            f"errors={err:.1f}%  dropped={dropped}"
        )
        cpu = point.get("server.cpu_percent")
        if cpu is not None:
            line += f"  server_cpu={cpu:.0f}%"
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self._shown = True
        elif t - self._last_plain >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_plain = t

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
