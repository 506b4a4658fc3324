"""A threshold on any of k6's built-in metrics loads and is judged as k6 1.1.0 judges it on a
plain-HTTP run, and ``summary.json`` lists ``http_req_tls_handshaking`` as k6's export does.

Found side by side with k6 1.1.0 on loopback: thresholds on ``http_req_tls_handshaking``,
``group_duration``, ``ws_sessions`` and ``grpc_req_duration`` ran in k6 (exit 0: a plain-HTTP
run's TLS handshakes are 0, the others have no samples and are judged as empty: 0) and were
refused by scfleet at load, exit 104 ("no metric named 'http_req_tls_handshaking' (did you mean
http_req_sending?)"); and k6's export of every HTTP run has ``http_req_tls_handshaking`` (all
0 over plain HTTP), which summary.json lacked. Over HTTPS scfleet keeps the handshake inside
``http_req_connecting``, so a threshold on it is refused there (one line naming the key).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from answering import answering
from k6_side import needs_k6, run_k6

from scfleet import api
from scfleet_core.errors import ConfigError

pytestmark = pytest.mark.slow

THRESHOLDS = {
    "http_req_tls_handshaking": ["avg<1", "max==0", "p(95)>0"],
    "group_duration": ["avg<1", "avg>1"],
    "ws_sessions": ["count<1", "count>0"],
    "ws_msgs_sent": ["count==0"],
    "ws_msgs_received": ["rate==0"],
    "ws_ping": ["p(95)<1"],
    "ws_session_duration": ["max>0"],
    "ws_connecting": ["avg==0"],
    "grpc_req_duration": ["p(95)<1", "min>0"],
}
#: what k6 1.1.0 judged (True: failed), checked against k6 itself below
K6_VERDICT = {
    "http_req_tls_handshaking": {"avg<1": False, "max==0": False, "p(95)>0": True},
    "group_duration": {"avg<1": False, "avg>1": True},
    "ws_sessions": {"count<1": False, "count>0": True},
    "ws_msgs_sent": {"count==0": False},
    "ws_msgs_received": {"rate==0": False},
    "ws_ping": {"p(95)<1": False},
    "ws_session_duration": {"max>0": True},
    "ws_connecting": {"avg==0": False},
    "grpc_req_duration": {"p(95)<1": False, "min>0": True},
}
TLS_STATS = {"avg": 0, "min": 0, "med": 0, "max": 0, "p(90)": 0, "p(95)": 0}


def _toml(thresholds: dict[str, list[str]]) -> str:
    lines = [
        "[scenarios.up]",
        'executor = "per-vu-iterations"',
        "vus = 1",
        "iterations = 2",
        "[scenarios.up.device]",
        'endpoint = "/up"',
        "chunk_bytes = 64",
        "[thresholds]",
    ]
    return "\n".join(lines + [f"{k} = {json.dumps(v)}" for k, v in thresholds.items()]) + "\n"


def _scfleet(tmp: Path, url: str, thresholds: dict[str, list[str]]) -> dict[str, object]:
    (tmp / "s.toml").write_text(_toml(thresholds))
    api.run(api.load(tmp / "s.toml"), target=url, out=tmp / "r", workers=1)
    doc: dict[str, object] = json.loads((tmp / "r" / "summary.json").read_text())
    return doc


def test_thresholds_on_k6_builtins_are_judged_as_k6_judges_them(tmp_path: Path) -> None:
    with answering(200, 0.0) as url:
        doc = _scfleet(tmp_path, url, THRESHOLDS)
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    assert {k: metrics[k]["thresholds"] for k in THRESHOLDS} == K6_VERDICT


def test_summary_lists_tls_handshaking_as_k6_does(tmp_path: Path) -> None:
    with answering(200, 0.0) as url:
        doc = _scfleet(tmp_path, url, {})
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["http_req_tls_handshaking"] == TLS_STATS
    assert "group_duration" not in metrics and "ws_sessions" not in metrics  # no samples


def test_over_https_a_tls_handshaking_threshold_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(_toml({"http_req_tls_handshaking": ["p(95)<100"]}))
    with pytest.raises(ConfigError, match='thresholds."http_req_tls_handshaking"'):
        api.load(tmp_path / "s.toml", target="https://127.0.0.1:9")


@needs_k6
def test_k6_itself(tmp_path: Path) -> None:
    """k6 on the same run: the same verdicts, exit 99, and the export's TLS figures."""
    script = (
        "import http from 'k6/http';\n"
        f"export const options = {{ vus: 1, iterations: 2, thresholds: {json.dumps(THRESHOLDS)} }};\n"
        "export default function () { http.post('URL/up', 'x'.repeat(64)); }\n"
    )
    with answering(200, 0.0) as url:
        code, summary = run_k6(script.replace("URL", url), tmp_path, summary_required=True)
    m = summary["metrics"]
    assert {k: m[k]["thresholds"] for k in THRESHOLDS} == K6_VERDICT
    assert {k: v for k, v in m["http_req_tls_handshaking"].items() if k != "thresholds"} == (
        TLS_STATS
    )
    assert code == 99
