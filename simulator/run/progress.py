"""Live progress while a run goes: stage, elapsed/total, active devices, req/s, p95, error rate,
server CPU.

On a terminal a rich display is redrawn in place each tick; otherwise (CI logs, pipes) a plain
line is written every few seconds, so logs stay readable and greppable.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from simulator.durations import format_duration

if TYPE_CHECKING:
    from simulator.config import RunConfig
    from simulator.executors import StageWindow
    from simulator.run.runner import Environment


def _figures(point: dict[str, Any]) -> dict[str, float]:
    sc = point["scenarios"].values()
    reqs = sum(s["requests"] for s in sc)
    failed = sum(s["failed"] for s in sc)
    return {
        "rps": reqs / point["span"] if point["span"] else 0.0,
        "err": failed / reqs * 100 if reqs else 0.0,
        "p95": max((s["p95_ms"] for s in sc if s["requests"]), default=0.0),
        "dropped": sum(s["dropped"] for s in sc),
    }


def current_stages(windows: Sequence[StageWindow], t: float) -> str:
    """'name S2/3 20→40 iters/s' for every scenario with a stage running at ``t``."""
    counts: dict[str, int] = {}
    for w in windows:
        counts[w.scenario] = counts.get(w.scenario, 0) + 1
    now = [w for w in windows if w.start <= t < w.end]
    if not now:
        return "graceful stop" if windows and t >= max(w.end for w in windows) else "waiting"
    return ", ".join(f"{w.scenario} S{w.index + 1}/{counts[w.scenario]} {w.label}" for w in now)


class LineProgress:
    """Plain progress: rewritten in place on a terminal, one line every ``every`` s otherwise."""

    def __init__(
        self,
        total: float,
        stream: TextIO | None = None,
        every: float = 10.0,
        windows: Sequence[StageWindow] = (),
    ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.windows = list(windows)
        self._last_plain = -1e9
        self._shown = False

    def line(self, point: dict[str, Any]) -> str:
        f = _figures(point)
        t = point["t"]
        line = (
            f"running {format_duration(t)}/{format_duration(self.total)}  "
            f"devices={point['active']}  req/s={f['rps']:.0f}  p95={f['p95']:.1f}ms  "
            f"errors={f['err']:.1f}%  dropped={f['dropped']}"
        )
        cpu = point.get("server.cpu_percent")
        if cpu is not None:
            line += f"  server_cpu={cpu:.0f}%"
        if self.windows:
            line += f"  stage: {current_stages(self.windows, t - point['span'] / 2)}"
        return line

    def __call__(self, env: Environment, point: dict[str, Any]) -> None:
        t = point["t"]
        if self.tty:
            self.stream.write("\r\033[K" + self.line(point))
            self.stream.flush()
            self._shown = True
        elif t - self._last_plain >= self.every:
            self.stream.write(self.line(point) + "\n")
            self.stream.flush()
            self._last_plain = t

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


class RichProgress:
    """A rich live panel, redrawn in place each tick (terminals only)."""

    def __init__(
        self,
        total: float,
        windows: Sequence[StageWindow],
        stream: TextIO | None = None,
        *,
        no_color: bool = False,
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self.total = total
        self.windows = list(windows)
        self.console = Console(file=stream or sys.stderr, no_color=no_color or None)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self._started = False

    def render(self, point: dict[str, Any]) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        f = _figures(point)
        t = point["t"]
        head = Table.grid(padding=(0, 1))
        head.add_row(
            "[bold]stage[/]",
            current_stages(self.windows, t - point["span"] / 2),
            ProgressBar(total=max(self.total, 1e-9), completed=min(t, self.total), width=30),
            f"{format_duration(t)}/{format_duration(self.total)}",
        )
        cells = [
            f"devices [bold]{point['active']}[/]",
            f"req/s [bold]{f['rps']:.0f}[/]",
            f"p95 [bold]{f['p95']:.1f} ms[/]",
            f"errors [{'red' if f['err'] >= 1 else 'green'}]{f['err']:.2f}%[/]",
            f"dropped [bold]{f['dropped']}[/]",
        ]
        cpu = point.get("server.cpu_percent", point.get("node.cpu_percent"))
        if cpu is not None:
            cells.append(f"server CPU [bold]{cpu:.0f}%[/]")
        gen = point.get("gen.cpu_percent")
        if gen is not None:
            cells.append(f"generator CPU {gen:.0f}%")
        out = Table.grid()
        out.add_row(head)
        out.add_row(Text.from_markup("  ".join(cells)))
        return out

    def __call__(self, env: Environment, point: dict[str, Any]) -> None:
        if not self._started:
            self.live.start()
            self._started = True
        self.live.update(self.render(point), refresh=True)

    def close(self) -> None:
        if self._started:
            self.live.stop()
            self._started = False


def make_progress(
    cfg: RunConfig, stream: TextIO | None = None, *, no_color: bool = False
) -> LineProgress | RichProgress:
    """Rich on a terminal (``no_color``: without colours), plain lines otherwise."""
    from simulator.executors import stage_windows

    stream = stream or sys.stderr
    windows = [w for sc in cfg.scenarios for w in stage_windows(sc)]
    if stream.isatty():
        return RichProgress(cfg.total_duration, windows, stream, no_color=no_color)
    return LineProgress(cfg.total_duration, stream, windows=windows)
