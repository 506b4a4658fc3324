"""k6-style durations ("1m30s", "500ms", "2h") to seconds and back."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "us": 1e-6, "µs": 1e-6}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|s|m|h)")


def parse_duration(value: object) -> float:
    """Seconds from a k6 duration string or a bare number of seconds.

    Raises ValueError with a short reason; the config layer adds file and key.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")) or abs(value) > 1e15:
            raise ValueError(f"expected a finite duration, got {value!r}")
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '30s', got {value!r}")
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    if len(text) > 64:
        raise ValueError(f"expected a duration like '30s', got {value[:40]!r}...")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return parse_duration(float(text))
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"expected a duration like '30s', '1m30s' or '500ms', got {value!r}")
    return parse_duration(total)


def format_duration(seconds: float) -> str:
    """Compact human form, as k6 prints durations: 1m30s, 2.5s, 450ms."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    frac = seconds - whole
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    out = ""
    if h:
        out += f"{h}h"
    if m:
        out += f"{m}m"
    if s or frac or not out:
        out += f"{s + frac:.1f}".rstrip("0").rstrip(".") + "s"
    return out
