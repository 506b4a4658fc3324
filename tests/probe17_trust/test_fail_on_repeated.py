"""``--fail-on`` given more than once: every rule of every one is judged.

Before, argparse kept the last ``--fail-on`` and dropped the others without a word:
``scfleet compare A B --fail-on 'p(95)+10%' --fail-on 'error_rate+1pp'`` with NEW's p(95)
ten times BASE's said "gate: passed 1 of 1" (exit 0) — a CI job that split its rules over
two flags, as it may with ``--out``, gated on the last one only.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.support.small_run import SMALL_UPLOAD

pytestmark = pytest.mark.slow  # one real run of a second


def _runs(tmp_path: Path, scfleet: Callable[..., CompletedProcess[str]]) -> tuple[Path, Path]:
    """BASE: a real one-second run on the embedded server; NEW: its copy, p(95) ten times."""
    cfg = tmp_path / "up.toml"
    cfg.write_text(SMALL_UPLOAD)
    base, new = tmp_path / "base", tmp_path / "new"
    done = scfleet("run", str(cfg), "--out", str(base), "--quiet", "--workers", "1")
    assert done.returncode == 0, done.stderr + done.stdout
    shutil.copytree(base, new)
    doc = json.loads((new / "summary.json").read_text())
    doc["metrics"]["http_req_duration"]["p(95)"] *= 10
    (new / "summary.json").write_text(json.dumps(doc))
    return base, new


def test_every_fail_on_is_judged(
    tmp_path: Path, scfleet: Callable[..., CompletedProcess[str]]
) -> None:
    base, new = _runs(tmp_path, scfleet)
    done = scfleet(
        "compare", str(base), str(new), "--fail-on", "p(95)+10%", "--fail-on", "error_rate+1pp"
    )
    assert done.returncode == 99, done.stdout + done.stderr
    assert "FAIL  p(95)+10%" in done.stdout, done.stdout
    assert "gate: FAILED 1 of 2 (p(95)+10%)" in done.stdout, done.stdout
    # each flag's rules in turn, as one flag with them all would be
    once = scfleet("compare", str(base), str(base), "--fail-on", "avg+1%", "--fail-on", "avg+1%")
    assert once.returncode == 0 and "passed 2 of 2" in once.stdout, once.stdout
