"""A run whose devices send other audio under sequences the server holds names the conflicts.

Virtual devices number their uploads from 0 in every run. Against a server that kept its
ledger, a second run with other audio (here ``[audio] seed``) sends new audio under held
(device, sequence) pairs. The reference server used to answer each 200 ``"duplicate": true``
and drop it, and the run counted every one delivered; it now answers 409 (nothing stored),
and scfleet records each as a failure with its own ``error`` kind, ``sequence-conflict``, and
says so in a note naming the scenario, the count and the first device.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from scfleet_core.errors import EXIT_THRESHOLDS_FAILED
from simulator.config import load_config
from tests.support.small_run import SMALL_UPLOAD


def _rows(ledger: Path) -> int:
    with sqlite3.connect(ledger) as db:
        return int(db.execute("SELECT count(*) FROM uploads").fetchone()[0])


def _counts(run: Path) -> tuple[int, int]:
    with open(run / "devices.csv") as fh:
        rows = list(csv.DictReader(fh))
    return sum(int(r["ok"]) for r in rows), sum(int(r["failed"]) for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "workers"),
    [
        ("iot_upload", "1"),
        ("iot_upload", "2"),
        ("python:simulator.builtin_devices:IotUpload", "1"),  # the Python device API's path
    ],
)
def test_a_rerun_with_other_audio_names_the_conflicts(
    tmp_path: Path,
    scfleet: Callable[..., CompletedProcess[str]],
    reference_server: Callable[[Path], Any],
    kind: str,
    workers: str,
) -> None:
    server = reference_server(tmp_path / "srv")
    ledger = tmp_path / "srv" / "ledger.sqlite"
    plan = SMALL_UPLOAD.replace('"iot_upload"', f'"{kind}"')
    runs = []
    for name, audio in (("first", ""), ("second", "[audio]\nseed = 7\n")):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(plan + audio)
        out = tmp_path / name
        done = scfleet(
            "run", str(cfg), "--target", server.url, "--out", str(out), "--quiet",
            "--workers", workers,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        runs.append((out, done, _rows(ledger)))
    (first, _done1, rows1), (second, done2, rows2) = runs
    assert _counts(first)[0] == rows1 > 0
    ok2, failed2 = _counts(second)
    assert rows2 - rows1 == ok2  # what the second run counted ok is what the ledger got
    assert failed2 > 0  # its sequences 0.. were held with the first run's audio
    summary = json.loads((second / "summary.json").read_text())
    notes = summary["scfleet"]["notes"]
    said = [n for n in notes if "sequence conflicts" in n]
    assert said, notes
    assert sum(int(n.split("refused ")[1].split(" ")[0]) for n in said) == failed2, said
    assert "scenario up" in said[0] and "stored none" in said[0], said
    assert not [n for n in notes if "duplicate" in n], notes  # none was called a retry
    assert said[0] in done2.stdout
    failures = summary["scfleet"]["failures"]
    assert failures == [
        {"status": 409, "error": "sequence-conflict", "error_code": 1409, "count": failed2}
    ], failures
    assert f"failed: {failed2} × error sequence-conflict, status 409 (error_code 1409)" in (
        (second / "summary.txt").read_text()
    )


@pytest.mark.slow
def test_a_threshold_on_sequence_conflicts_judges_them(
    tmp_path: Path,
    scfleet: Callable[..., CompletedProcess[str]],
    reference_server: Callable[[Path], Any],
) -> None:
    """``http_reqs{error:sequence-conflict}`` is accepted at load and counts the 409s."""
    server = reference_server(tmp_path / "srv")
    threshold = '[thresholds]\n"http_reqs{error:sequence-conflict}" = ["count<1"]\n'
    codes = []
    for name, audio in (("first", ""), ("second", "[audio]\nseed = 7\n")):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(SMALL_UPLOAD + audio + threshold)
        done = scfleet("run", str(cfg), "--target", server.url, "--out", str(tmp_path / name))
        codes.append(done.returncode)
        assert "sequence-conflict" in done.stdout, done.stderr + done.stdout
    assert codes == [0, EXIT_THRESHOLDS_FAILED], codes


def test_the_error_kind_is_accepted_in_a_threshold_filter(tmp_path: Path) -> None:
    p = tmp_path / "t.toml"
    p.write_text(
        SMALL_UPLOAD + '[thresholds]\n"http_reqs{error:sequence-conflict}" = ["count<1"]\n'
    )
    cfg = load_config(p)
    assert [(t.metric, t.tags) for t in cfg.thresholds] == [
        ("http_reqs", (("error", "sequence-conflict"),))
    ]
