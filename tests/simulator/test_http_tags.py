"""k6's HTTP tags on every sample, failures broken down by reason, and no threshold filter on a
tag key that is never recorded (it would match nothing and pass)."""

from __future__ import annotations

import pathlib

import pytest
import vtime
from raw_http import Counting

from scfleet.cli import main
from scfleet_core.errors import ConfigError
from simulator.config import parse_config
from simulator.http import FakeReply, FakeTransport, Request
from simulator.metrics import HTTP_TAG_KEYS, failure_breakdown
from simulator.report.summary import render_text, summary_dict
from simulator.run.runner import Environment, build_bank


def _cfg(thresholds: dict[str, list[str]] | None = None, tags: dict[str, str] | None = None):
    sc: dict[str, object] = {
        "executor": "constant-arrival-rate",
        "rate": 20,
        "duration": "1s",
        "pre_allocated_devices": 5,
        "device": {"chunk_bytes": 320},
        "checks": [{"name": "x", "status": 200}],  # a {check:x} filter names a declared check
    }
    if tags:
        sc["tags"] = tags
    return parse_config({"scenarios": {"up": sc}, "thresholds": thresholds or {}})


def test_every_http_sample_carries_k6_tags_and_failures_have_a_reason() -> None:
    """On virtual time (its second of schedule took a second of the fast tier)."""
    n = 0

    def handler(req: Request) -> FakeReply:
        nonlocal n
        n += 1
        if n % 4 == 1:
            return FakeReply(error="reset")
        if n % 4 == 2:
            return FakeReply(503, b"busy")
        return FakeReply(200)

    cfg = _cfg({"http_req_duration{expected_response:true}": ["p(95)<2000"]})
    env = Environment(cfg, FakeTransport(handler), bank=build_bank(cfg), target="http://h:1/p")
    result = vtime.run_virtual(env.run())
    reg = result.registry
    series = [dict(t) for (name, t) in reg.series if name == "http_reqs"]
    assert series
    for tags in series:
        assert {"scenario", "kind", "method", "name", "url", "proto", "status"} <= set(tags)
        assert {"expected_response"} <= set(tags) <= HTTP_TAG_KEYS
        assert tags["name"] == "/api/esp32/audio/upload"  # the endpoint template, not per device
        assert tags["url"] == "http://h:1/p/api/esp32/audio/upload"
        assert tags["proto"] == "HTTP/1.1" and tags["method"] == "POST"
    count = reg.aggregate
    assert count("http_reqs", {}, "count") == 20
    assert count("http_reqs", {"expected_response": "true"}, "count") == 10
    assert count("http_reqs", {"error": "reset", "error_code": "1220", "status": "0"}, "count") == 5
    assert count("http_reqs", {"status": "503", "error_code": "1503"}, "count") == 5
    assert count("http_req_duration", {"expected_response": "true"}, "count") == 10
    th = result.thresholds[0]
    assert th.ok and th.observed is not None and th.note != "no samples"
    rows = failure_breakdown(reg)
    assert {(r.status, r.error, r.error_code, r.count) for r in rows} == {
        (0, "reset", 1220, 5),
        (503, "", 1503, 5),
    }
    assert summary_dict(result)["scfleet"]["failures"][0]["count"] == 5
    text = render_text(result)
    assert "failed: 5 × error reset (error_code 1220)" in text
    assert "failed: 5 × status 503 (error_code 1503)" in text


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("http_req_duration{expected:true}", "did you mean expected_response?"),
        ("http_req_failed{group:::setup}", "'group'"),
        ("iterations{status:200}", "no iterations sample carries a tag 'status'"),
        ("vus{scenario:up}", "no vus sample"),
    ],
)
def test_threshold_on_a_tag_key_never_recorded_is_refused(key: str, needle: str) -> None:
    agg = "p(95)<1" if "duration" in key else ("rate<1" if "failed" in key else "count>0")
    if key.startswith("vus"):
        agg = "value>0"
    with pytest.raises(ConfigError) as err:
        _cfg({key: [agg]})
    assert needle in str(err.value) and f'"{key}"' in str(err.value)


def test_recorded_and_scenario_tag_keys_are_accepted() -> None:
    cfg = _cfg(
        {
            "http_req_duration{expected_response:true,name:/api/esp32/audio/upload}": [
                "p(95)<2000"
            ],
            "http_reqs{error_code:1220}": ["count<10"],
            "http_req_failed{site:north}": ["rate<0.1"],
            "checks{check:x}": ["rate>0.9"],
        },
        tags={"site": "north"},
    )
    assert len(cfg.thresholds) == 4


def test_run_with_an_unrecorded_tag_key_exits_104_before_any_request(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    hits_server: tuple[str, type[Counting]],
) -> None:
    url, handler = hits_server
    path = tmp_path / "t.toml"
    path.write_text(
        '[scenarios.up]\nexecutor = "constant-arrival-rate"\nrate = 5\nduration = "2s"\n'
        "pre_allocated_devices = 2\n\n[thresholds]\n"
        '"http_req_duration{expected:true}" = ["p(95)<2000"]\n'
    )
    code = main(["run", str(path), "--target", url, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 104
    assert "did you mean expected_response?" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert handler.hits == 0
