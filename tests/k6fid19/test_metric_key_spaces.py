"""A threshold's metric key is read as k6 1.1 reads it (``ParseMetricName``,
``NewSubmetric``): spaces around the whole key are no part of a metric's name, so
``" http_reqs"``, ``"http_reqs "`` and ``"http_reqs{status:200} "`` are refused (exit 104),
and a sub-metric is exported under its name plus the tag spec trimmed inside the braces
(``http_reqs{ status:200 , method:POST }`` is ``http_reqs{status:200 , method:POST}`` in
``--summary-export``), spaces inside it kept.

Found side by side with k6 1.1.0 on one loopback server: k6 exited 104 for each of the three
keys; scfleet crashed on the first two (``KeyError: ' http_reqs'``, exit 1, after the run) and
ran the third (exit 0), and exported the sub-metric as
``http_reqs{ status:200 , method:POST }``.
"""

from __future__ import annotations

import json
import pathlib

import pytest
from answering import answering
from k6_side import needs_k6, run_k6

from scfleet import api
from scfleet_core.errors import ConfigError

REFUSED = [" http_reqs", "http_reqs ", "http_reqs{status:200} ", "\thttp_reqs{status:200}"]
SPACED = "http_reqs{ status:200 , method:POST }"
EXPORTED = "http_reqs{status:200 , method:POST}"

RUN = """[scenarios.up]
executor = "per-vu-iterations"
vus = 1
iterations = 2
[scenarios.up.device]
kind = "iot_upload"
[thresholds]
{key} = ["count>0"]
"""


@pytest.mark.parametrize("key", REFUSED)
def test_spaces_around_the_key_are_refused_at_load(key: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(RUN.format(key=json.dumps(key)))
    with pytest.raises(ConfigError, match="bad metric name") as err:
        api.load(path)
    assert err.value.exit_code == 104


@pytest.mark.slow
def test_a_sub_metric_is_exported_under_k6s_name(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(RUN.format(key=json.dumps(SPACED)))
    with answering(200, 0.0) as url:
        out = api.run(api.load(path, target=url), out=tmp_path / "run", workers=1)
    assert out.exit_code == 0
    summary = json.loads(out.files["summary.json"].read_text())
    assert summary["metrics"][EXPORTED]["count"] == 2
    assert summary["metrics"][EXPORTED]["thresholds"] == {"count>0": False}
    assert SPACED not in summary["metrics"]


def _script(key: str) -> str:
    options = {"vus": 1, "iterations": 2, "thresholds": {key: ["count>0"]}}
    return (
        "import http from 'k6/http';\n"
        f"export const options = {json.dumps(options)};\n"
        "export default function () { http.post('URL/api/esp32/audio/upload', 'x'); }\n"
    )


@pytest.mark.slow
@needs_k6
def test_k6_reads_the_keys_alike(tmp_path: pathlib.Path) -> None:
    with answering(200, 0.0) as url:
        for i, key in enumerate(REFUSED):
            (tmp_path / str(i)).mkdir()
            code, _ = run_k6(_script(key).replace("URL", url), tmp_path / str(i))
            assert code == 104, key
        code, summary = run_k6(_script(SPACED).replace("URL", url), tmp_path, summary_required=True)
    assert code == 0
    assert summary["metrics"][EXPORTED]["count"] == 2
