"""One second of a run's timeline, as the stage table reads it, for scenario ``s`` (3 active
devices). Shared by the stage-table tests (report_stages, stage_counter_rates, probe13, probe15)."""

from __future__ import annotations

from typing import Any

MS = (10.0, 20.0, 30.0, 40.0, 12.0)  # p50, p95, p99, max, avg


def tick(
    t: float,
    requests: int,
    failed: int = 0,
    *,
    dropped: int = 0,
    ms: tuple[float, float, float, float, float] = MS,
    **extra: Any,
) -> dict[str, Any]:
    """The tick ending at ``t``: ``requests`` answered, ``failed`` of them errors, ``dropped``
    iterations not started, latencies ``ms``; ``extra`` keys beside ``scenarios``."""
    p50, p95, p99, mx, avg = ms
    sc = {
        "requests": requests,
        "failed": failed,
        "dropped": dropped,
        "iterations": requests,
        "sent": 0,
        "received": 0,
        "rps": float(requests),
        "active": 3,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "max_ms": mx,
        "avg_ms": avg,
    }
    return {"t": t, "span": 1.0, "scenarios": {"s": sc}, "active": 3, **extra}
