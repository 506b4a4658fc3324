"""A request that never got a connection (refused, its dial failed) has k6's timings: all 0.

k6 splits a request's time by its connection's events: with none (``GotConn`` never called) it
has no sending, waiting or receiving, so ``http_req_duration`` is 0, and ``blocked`` and
``connecting`` 0 too. Found side by side with k6 1.1.0 on a refused loopback port: 3 requests,
``http_req_duration`` avg 0 in k6, 0.086 ms (fast) and 0.298 ms (aiohttp) in scfleet: the failed
dial was counted as the request's duration, pulling a refused-storm's percentiles away from
k6's. ``iteration_duration`` keeps the dial's time in both.
"""

from __future__ import annotations

import json
import pathlib
import socket

import pytest
from k6_side import needs_k6, run_k6

from scfleet import api
from simulator.session import GivenTarget, Target

TOML = """[output]
summary_trend_stats = ["count", "avg", "max"]
[target]
transport = "TR"
[scenarios.up]
executor = "per-vu-iterations"
vus = 1
iterations = 3
[scenarios.up.device]
kind = "iot_upload"
"""
TIMINGS = ["http_req_duration", "http_req_sending", "http_req_waiting", "http_req_receiving"]


def _refusing_url() -> str:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


class _Unchecked(GivenTarget):
    """The URL as given, not checked for a listener (the run is about refused requests)."""

    def start(self) -> Target:
        return Target(self.url, None)


@pytest.mark.parametrize("transport", ["fast", "aiohttp"])
def test_a_refused_request_has_k6s_zero_timings(transport: str, tmp_path: pathlib.Path) -> None:
    url = _refusing_url()
    path = tmp_path / "t.toml"
    path.write_text(TOML.replace("TR", transport))
    cfg = api.load(path, target=url)
    out = api.run(cfg, target=_Unchecked(url), out=tmp_path / "run", workers=1)
    metrics = json.loads(out.files["summary.json"].read_text())["metrics"]
    assert metrics["http_req_failed"]["passes"] == 3, metrics["http_req_failed"]
    for name in TIMINGS:
        assert metrics[name]["count"] == 3 and metrics[name]["max"] == 0, (name, metrics[name])
    assert metrics["iteration_duration"]["count"] == 3


@pytest.mark.slow
@needs_k6
def test_k6_times_a_refused_request_as_zero(tmp_path: pathlib.Path) -> None:
    script = (
        "import http from 'k6/http';\n"
        "export const options = { summaryTrendStats: ['count', 'avg', 'max'],\n"
        "  scenarios: { up: { executor: 'per-vu-iterations', vus: 1, iterations: 3 } } };\n"
        "export default function () { http.post('URL/api/esp32/audio/upload', 'x'); }\n"
    )
    _, summary = run_k6(script.replace("URL", _refusing_url()), tmp_path, summary_required=True)
    metrics = summary["metrics"]
    assert metrics["http_req_failed"]["passes"] == 3
    for name in TIMINGS:
        assert metrics[name]["count"] == 3 and metrics[name]["max"] == 0, (name, metrics[name])
