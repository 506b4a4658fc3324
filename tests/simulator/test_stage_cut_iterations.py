"""Iterations a graceful stop cuts count against the stage they started in: a stage where half
the iterations never finished must not read "held".

Real server on 127.0.0.1 answering every other upload after 10 s; 10/s for 2 s,
``graceful_stop = "1s"``: ~10 answered in ~1 ms, ~10 cut. As in k6 the cut requests stay out
of every threshold (``p(95)<500`` passes, exit 0), but the stage table's verdict is the
product's own "where does it break" judgement and must name them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scfleet import api


class _EverySecondHangs(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()
    release = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with _EverySecondHangs.lock:
            _EverySecondHangs.count += 1
            hang = _EverySecondHangs.count % 2 == 0
        if hang:
            _EverySecondHangs.release.wait(10)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hanging_server() -> Iterator[str]:
    _EverySecondHangs.count = 0
    _EverySecondHangs.release.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _EverySecondHangs)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        _EverySecondHangs.release.set()
        srv.shutdown()
        srv.server_close()


_TOML = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 10
duration = "2s"
pre_allocated_devices = 30
graceful_stop = "1s"
[scenarios.up.device]
chunk_bytes = 200
[thresholds]
http_req_duration = ["p(95)<500"]
[audio]
profiles = 1
seconds = 1
"""


def _stages(run: Path) -> Any:
    return json.loads((run / "summary.json").read_text())["scfleet"]["stages"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_stage_whose_iterations_were_cut_does_not_read_held(
    tmp_path: Path, hanging_server: str, workers: int
) -> None:
    from simulator.report.cli import build_reports

    cfg_file = tmp_path / "s.toml"
    cfg_file.write_text(_TOML)
    run = tmp_path / "run"
    t0 = time.monotonic()
    outcome = api.run(api.load(cfg_file), target=hanging_server, out=run, workers=workers)
    assert time.monotonic() - t0 < 30
    assert outcome.exit_code == 0  # k6's semantics: the cut requests are in no threshold
    summary = json.loads((run / "summary.json").read_text())
    cut = summary["scfleet"]["metrics"]["interrupted_iterations"]["count"]
    assert cut >= 5  # half of 20, less a few the machine's lag kept from starting on time

    def check(stages: Any) -> None:
        verdict = stages["scenarios"]["up"]
        assert verdict["verdict"] != "held", verdict
        assert f"{cut} of " in verdict["reason"], verdict
        (row,) = stages["rows"]
        assert (row.get("cut"), row["thresholds_ok"]) == (cut, False), row

    check(_stages(run))
    text = (run / "summary.txt").read_text().split("STAGES")[1]
    assert f"{cut} of " in text and "the limit is higher" not in text, text

    # `scfleet report` re-rendering the folder judges the same
    build_reports(run)
    check(_stages(run))

    # a folder from before the count (no "interrupted" in its ticks) still renders, as 0
    timeline = json.loads((run / "timeline.json").read_text())
    for p in timeline:
        for s in p["scenarios"].values():
            s.pop("interrupted", None)
    (run / "timeline.json").write_text(json.dumps(timeline))
    build_reports(run)
    (row,) = _stages(run)["rows"]
    assert row["cut"] == 0 and row["thresholds_ok"] is True, row
