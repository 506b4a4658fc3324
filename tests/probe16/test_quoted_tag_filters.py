"""A threshold's tag filter is read as k6 reads it: quotes and spaces around a key or value go
(``{method:"POST"}`` is ``method`` = ``POST``), and a tag with no value is refused (exit 104).

Found side by side with k6 1.1.0 against a loopback server answering every upload with 500:
``'http_req_failed{method:"POST"}' = ["rate<0.01"]`` read the value with its quotes, matched no
sample, printed ✓ "no samples" and exited 0; k6 strips the quotes (``AddSubmetric``), sees
the failures and exits 99. ``{scenario:}`` k6 refuses (exit 104); scfleet took it as a filter
on an empty value that no sample carries.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from answering import answering
from k6_side import needs_k6, run_k6
from small_run import SMALL_UPLOAD

from scfleet import api
from scfleet_core.errors import ConfigError
from simulator.config import load_config
from simulator.metrics.thresholds import parse_metric_key

SCENARIO = (
    SMALL_UPLOAD
    + """endpoint = "/up"
chunk_bytes = 64
[thresholds]
"""
)

K6_SCRIPT = """
import http from 'k6/http';
export const options = {
  scenarios: { up: { executor: 'constant-arrival-rate', rate: 5, timeUnit: '1s',
                     duration: '1s', preAllocatedVUs: 2 } },
  thresholds: { 'http_req_failed{method:"POST"}': ['rate<0.01'] },
};
export default function () { http.post('URL/up', 'x'.repeat(64)); }
"""


@pytest.mark.parametrize(
    ("key", "name", "tags"),
    [
        ('http_req_failed{method:"POST"}', "http_req_failed", (("method", "POST"),)),
        ("http_req_failed{ status : '500' }", "http_req_failed", (("status", "500"),)),
        (
            "http_reqs{'scenario':up,kind:\"virtual\"}",
            "http_reqs",
            (("kind", "virtual"), ("scenario", "up")),
        ),
        ("http_req_duration{url:http://h:1/x}", "http_req_duration", (("url", "http://h:1/x"),)),
    ],
)
def test_quotes_and_spaces_around_a_tag_go(
    key: str, name: str, tags: tuple[tuple[str, str], ...]
) -> None:
    assert parse_metric_key(key) == (name, tags)


@pytest.mark.parametrize(
    "key", ["http_reqs{scenario:}", "http_reqs{scenario: ''}", "http_reqs{}", "http_reqs{a:b,}"]
)
def test_a_tag_without_a_value_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="expected tag:value"):
        parse_metric_key(key)


def test_the_cli_refuses_an_empty_value_at_load(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SCENARIO + '"http_reqs{scenario:}" = ["count<1"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "s.toml")
    assert err.value.exit_code == 104 and "http_reqs{scenario:}" in str(err.value)


@pytest.mark.slow
def test_a_quoted_value_sees_the_failures(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(
        SCENARIO + """'http_req_failed{method:"POST"}' = ["rate<0.01"]\n"""
    )
    with answering(500, 0.0) as url:
        out = api.run(api.load(tmp_path / "s.toml"), target=url, out=tmp_path / "r", workers=1)
    (res,) = out.result.thresholds
    assert res.observed == 1.0 and not res.ok, res
    assert out.exit_code == 99


@pytest.mark.slow
@needs_k6
def test_k6_reads_the_quoted_value_alike(tmp_path: Path) -> None:
    with answering(500, 0.0) as url:
        code, summary = run_k6(K6_SCRIPT.replace("URL", url), tmp_path)
    assert code == 99, summary
    assert summary["metrics"]['http_req_failed{method:"POST"}']["value"] == 1
