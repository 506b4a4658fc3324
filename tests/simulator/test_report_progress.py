"""Live progress: rich in place on a terminal, plain readable lines otherwise."""

from __future__ import annotations

import io
from typing import Any

from simulator.config import parse_config
from simulator.run.progress import LineProgress, RichProgress, current_stages, make_progress

CFG = parse_config(
    {
        "scenarios": {
            "up": {
                "executor": "ramping-arrival-rate",
                "start_rate": 10,
                "pre_allocated_devices": 2,
                "stages": [
                    {"duration": "10s", "target": 10},
                    {"duration": "10s", "target": 30},
                ],
            }
        }
    }
)


def point(t: float) -> dict[str, Any]:
    sc = {"requests": 40, "failed": 2, "dropped": 1, "p95_ms": 12.5}
    return {"t": t, "span": 2.0, "scenarios": {"up": sc}, "active": 7, "server.cpu_percent": 88.0}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_when_not_a_terminal() -> None:
    out = io.StringIO()
    prog = make_progress(CFG, out)
    assert isinstance(prog, LineProgress)
    for t in (2.0, 4.0, 12.0, 14.0):
        prog(None, point(t))
    prog.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # one line every 10 s, not one per tick
    assert "\x1b" not in out.getvalue()
    assert "up S1/2 10 iters/s" in lines[0] and "up S2/2 10→30 iters/s" in lines[1]
    assert "req/s=20" in lines[0] and "errors=5.0%" in lines[0] and "server_cpu=88%" in lines[0]


def test_rich_progress_on_a_terminal_redraws_in_place() -> None:
    out = Tty()
    prog = make_progress(CFG, out)
    assert isinstance(prog, RichProgress)
    prog(None, point(2.0))
    prog(None, point(12.0))
    prog.close()
    text = out.getvalue()
    assert "\x1b[1A" in text  # cursor up: the panel is redrawn, not appended
    for want in ("up S2/2 10→30 iters/s", "12s/20s", "req/s", "p95", "12.5 ms", "5.00%", "88%"):
        assert want in text, want


def test_current_stages_outside_the_schedule() -> None:
    from simulator.executors import stage_windows

    ws = stage_windows(CFG.scenarios[0])
    assert current_stages(ws, 25.0) == "graceful stop"
    assert current_stages([], 1.0) == "waiting"
