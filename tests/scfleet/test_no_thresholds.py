"""``--no-thresholds`` (k6's flag) on ``scfleet run``/``inspect``, ``api.load``/``api.run`` and
the pytest plugin's ``fleet.run``: as k6 1.1 does (checked side by side, below), no threshold is
judged — a failing one exits 0, not 99; ``abort_on_fail`` aborts nothing; the summary and the
``--summary-export`` have no ``thresholds`` (sub-metrics the keys name are still listed once they
have samples) — and none is refused at load (a bad expression or an unknown metric ran and exited
0 in k6; the shape of the table is still checked: 104 for a number as an expression).

Before, ``scfleet run --no-thresholds`` was a usage error (exit 2: unrecognized arguments)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from answering import answering
from k6_side import needs_k6, run_k6
from small_run import SMALL_UPLOAD

from scfleet import api
from scfleet.cli import main
from scfleet_core.errors import ConfigError
from simulator.config import check_url_filters, parse_config
from simulator.metrics import Registry
from simulator.run.runner import threshold_results

#: fails at the end (p(95)<0) and aborts at once (count<1, abort_on_fail), on a sub-metric
FAILING = """[thresholds]
"http_reqs{status:200}" = [{ threshold = "count<1", abort_on_fail = true }]
http_req_duration = ["p(95)<0"]
"http_reqs{status:500}" = ["count<1"]
"""
#: refused at load without --no-thresholds (k6 1.1 refuses each with 104, runs each with it)
UNJUDGEABLE = """no_such_metric = ["count<1"]
http_req_failed = ["p(95)<<abc"]
http_req_waiting = ["rate<1"]
"http_reqs{status}" = ["count<1"]
"""
SCENARIOS = {"up": {"executor": "constant-vus", "vus": 1, "duration": "1s"}}


def _file(tmp_path: Path, thresholds: str, duration: str = "1s") -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        SMALL_UPLOAD.replace('"1s"', f'"{duration}"') + "chunk_bytes = 1600\n" + thresholds
    )
    return path


def test_no_threshold_is_refused_and_none_is_judged() -> None:
    bad = {
        "http_reqs": ["count>0"],
        "no_such_metric": ["count<1"],
        "http_req_failed": ["p(95)<<abc", "rate<0.5"],
        "http_req_waiting": ["rate<1"],
        "http_reqs{status}": ["count<1"],
        "checks{check:nope}": ["rate>0.9"],
    }
    with pytest.raises(ConfigError, match=r"p\(95\)<<abc"):
        parse_config({"scenarios": SCENARIOS, "thresholds": bad})
    for key in ("no_such_metric", "http_req_waiting", "http_reqs{status}", "checks{check:nope}"):
        with pytest.raises(ConfigError, match=re.escape(f'thresholds."{key}"')):
            parse_config({"scenarios": SCENARIOS, "thresholds": {key: bad[key]}})
    cfg = parse_config({"scenarios": SCENARIOS, "thresholds": bad}, no_thresholds=True)
    assert cfg.no_thresholds
    # those that would load are kept (their sub-metrics are listed), the others left out
    assert [(t.metric_key, t.expr.source) for t in cfg.thresholds] == [
        ("http_reqs", "count>0"),
        ("http_req_failed", "rate<0.5"),
    ]
    reg = Registry()
    reg.get("http_reqs", {"scenario": "up"}).add(0)  # count>0 would fail
    assert threshold_results(cfg, reg, 1.0) == []
    strict = parse_config({"scenarios": SCENARIOS, "thresholds": {"http_reqs": ["count>0"]}})
    assert [r.ok for r in threshold_results(strict, reg, 1.0)] == [False]


def test_the_started_targets_url_refuses_no_url_filter() -> None:
    """At load a ``{url:…}`` filter is held to end in a requested path (the embedded server's
    port is not known yet); once the target is up, one that is not its URL is refused (104):
    not under --no-thresholds, where nothing is judged."""
    key = "http_reqs{url:http://127.0.0.1:1/api/esp32/audio/upload}"
    doc = {
        "scenarios": {"up": {**SCENARIOS["up"], "device": {"kind": "iot_upload"}}},
        "thresholds": {key: ["count>0"]},
    }
    with pytest.raises(ConfigError, match="no device of this run requests url"):
        check_url_filters(parse_config(doc), "http://127.0.0.1:5")
    off = parse_config(doc, no_thresholds=True)
    assert [t.metric_key for t in off.thresholds] == [key]
    check_url_filters(off, "http://127.0.0.1:5")


@pytest.mark.parametrize(
    "spec",
    [
        [42],  # k6: "cannot unmarshal number" (104) with --no-thresholds too
        [{"threshold": "count<1", "abort_on_fail": "yes"}],
        [{"threshold": "count<1", "abort_on_fial": True}],
    ],
)
def test_the_table_shape_is_still_checked(spec: list[object]) -> None:
    with pytest.raises(ConfigError, match=r'thresholds\."http_reqs"\[0\]'):
        parse_config(
            {"scenarios": SCENARIOS, "thresholds": {"http_reqs": spec}}, no_thresholds=True
        )


def test_cli_refuses_without_the_flag_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, "[thresholds]\n" + UNJUDGEABLE)
    assert main(["run", str(path), "--target", "http://127.0.0.1:9", "--quiet"]) == 104
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "p(95)<<abc" in err, err
    # inspect loads it with the flag, says the thresholds are off and why a run would stop
    assert main(["inspect", str(path), "--no-thresholds"]) == 0
    out = capsys.readouterr().out
    assert "off (--no-thresholds)" in out and "p(95)<<abc" in out, out
    assert main(["inspect", str(path), "--no-thresholds", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["no_thresholds"] is True and "p(95)<<abc" in doc["thresholds_refused"]
    assert main(["inspect", str(_file(tmp_path, FAILING)), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["no_thresholds"], doc["thresholds_refused"], len(doc["thresholds"])) == (
        False,
        None,
        3,
    )


@pytest.mark.slow
def test_run_with_failing_thresholds_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, FAILING + UNJUDGEABLE, duration="2s")
    export = tmp_path / "export.json"
    with answering(200, 0.0) as url:
        code = main(
            [
                "run",
                str(path),
                "--target",
                url,
                "--quiet",
                "--workers",
                "1",
                "--no-thresholds",
                "--out",
                str(tmp_path / "r"),
                "--summary-export",
                str(export),
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(export.read_text())
    # abort_on_fail aborted nothing: the whole schedule ran (5/s for 2 s)
    assert doc["scfleet"]["state"]["abortedBy"] is None
    assert doc["metrics"]["http_reqs"]["count"] == 10
    # no threshold anywhere, as k6's export; the sub-metric with samples listed, the empty not
    assert [k for k, v in doc["metrics"].items() if "thresholds" in v] == []
    assert doc["metrics"]["http_reqs{status:200}"]["count"] == 10
    assert "http_reqs{status:500}" not in doc["metrics"]
    assert doc["scfleet"]["thresholds"] == []
    assert doc["scfleet"]["options"]["noThresholds"] is True
    assert "THRESHOLDS" not in out and "thresholds: off (--no-thresholds)" in out
    assert json.loads((tmp_path / "r" / "config.json").read_text())["no_thresholds"] is True
    junit = (tmp_path / "r" / "junit.xml").read_text()
    assert 'tests="0"' in junit
    assert "thresholds off" in (tmp_path / "r" / "report.html").read_text()

    # scfleet report rebuilds the folder from its stream with the thresholds off (the file's
    # bad ones no longer load otherwise)
    from simulator.report.output import rebuild_run

    (tmp_path / "r" / "summary.json").unlink()
    rebuild_run(tmp_path / "r")
    again = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert again["scfleet"]["options"]["noThresholds"] is True
    assert again["scfleet"]["thresholds"] == []


@pytest.mark.slow
def test_api_keyword(tmp_path: Path) -> None:
    path = _file(tmp_path, FAILING, duration="2s")  # the abort comes at the first tick, 1 s
    cfg = api.load(path)  # loaded strictly: its thresholds would fail and abort the run
    assert not cfg.no_thresholds
    with answering(200, 0.0) as url:
        off = api.run(cfg, target=url, out=tmp_path / "off", workers=1, no_thresholds=True)
        on = api.run(cfg, target=url, out=tmp_path / "on", workers=1)
    assert (off.exit_code, off.result.thresholds, off.result.aborted) == (0, [], None)
    assert off.result.registry.merged("http_reqs", None).value == 10  # type: ignore[union-attr]
    assert on.exit_code == 99 and on.result.aborted == "http_reqs{status:200}: count<1"
    assert json.loads((tmp_path / "on" / "config.json").read_text()).get("no_thresholds") is None


@pytest.mark.slow
def test_plugin_keyword(tmp_path: Path, fleet: Any) -> None:
    path = _file(tmp_path, FAILING)
    with answering(200, 0.0) as url:
        run = fleet.run(path, target=url, overrides=["run.workers=1"], no_thresholds=True)
    run.assert_ok()  # the failing (and aborting) thresholds are off
    assert run.summary["scfleet"]["options"]["noThresholds"] is True
    assert run.metric("http_reqs")["count"] == 5


K6_SCRIPT = """
import http from 'k6/http';
export const options = {
  vus: 1, iterations: 4,
  thresholds: {
    'http_reqs{status:200}': [{ threshold: 'count<1', abortOnFail: true }],
    http_req_duration: ['p(95)<0'],
    no_such_metric: ['count<1'],
    http_req_failed: ['p(95)<<abc'],
  },
};
export default function () { http.post('URL/up', 'x'.repeat(100)); }
"""


@needs_k6
@pytest.mark.slow
def test_as_k6(tmp_path: Path) -> None:
    """k6 1.1 side by side: with the flag exit 0, its export without any thresholds but with
    the sub-metric; without it 104 (the bad expression). scfleet the same."""
    (tmp_path / "k6a").mkdir()
    (tmp_path / "k6b").mkdir()
    with answering(200, 0.0) as url:
        refused, _ = run_k6(K6_SCRIPT.replace("URL", url), tmp_path / "k6a", flags=())
        code, k6 = run_k6(
            K6_SCRIPT.replace("URL", url), tmp_path / "k6b", flags=("--no-thresholds",)
        )
        path = _file(
            tmp_path,
            '[thresholds]\n"http_reqs{status:200}" = [{ threshold = "count<1", '
            'abort_on_fail = true }]\nhttp_req_duration = ["p(95)<0"]\n'
            'no_such_metric = ["count<1"]\nhttp_req_failed = ["p(95)<<abc"]\n',
        )
        with pytest.raises(ConfigError):
            api.load(path, target=url)
        ours = api.run(
            api.load(path, target=url, no_thresholds=True), out=tmp_path / "r", workers=1
        )
    assert (refused, code) == (104, 0)
    assert ours.exit_code == 0
    mine = json.loads(ours.files["summary.json"].read_text())
    for doc in (k6, mine):
        assert [k for k, v in doc["metrics"].items() if "thresholds" in v] == []
        assert doc["metrics"]["http_reqs{status:200}"]["count"] > 0
