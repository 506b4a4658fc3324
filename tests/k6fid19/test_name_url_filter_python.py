"""A ``{name:URL}`` filter in a run with a Python device is refused at load (exit 104) with
the filters that do what k6's does: a request's ``name`` is k6's URL there, its path (or the
device's ``name=``) here, so the filter matched no sample, the trend read 0, and the gate
passed where k6's failed (or failed where k6's passed).

Found side by side with k6 1.1.0 (2 VUs x 12 iterations, each a POST to ``/delay/100``):
``http_req_duration{name:URL/delay/100}`` ``min>=100`` passed in k6 and failed here, ``min<100``
the reverse; scfleet's export held zeros for it. ``{url:URL}`` (and ``{name:/delay/100}``)
select those requests here, as the test below checks.
"""

from __future__ import annotations

import json
import pathlib

import pytest
from answering import answering

from scfleet import api
from scfleet_core.errors import ConfigError

DEVICE = """
from simulator.userdevice import Device


class D(Device):
    async def iteration(self) -> None:
        await self.client.post("/up", data=b"x" * 10)
"""

RUN = """[scenarios.up]
executor = "per-vu-iterations"
vus = 1
iterations = 3
[scenarios.up.device]
kind = "python:dev.py:D"
[thresholds]
{key} = ["count==3"]
"""


def _write(tmp: pathlib.Path, key: str) -> pathlib.Path:
    (tmp / "dev.py").write_text(DEVICE)
    (tmp / "t.toml").write_text(RUN.format(key=json.dumps(key)))
    return tmp / "t.toml"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/up", "https://example.test/a/b"])
def test_a_url_as_name_is_refused_with_the_filters_that_match(
    url: str, tmp_path: pathlib.Path
) -> None:
    with pytest.raises(ConfigError, match=r"where k6's is its URL") as err:
        api.load(_write(tmp_path, f"http_reqs{{name:{url}}}"))
    path = "/" + url.split("//", 1)[1].partition("/")[2]
    assert f"{{name:{path}}}" in str(err.value) and f"{{url:{url}}}" in str(err.value)
    assert err.value.exit_code == 104


def test_a_scenario_tag_named_name_takes_any_value(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, "http_reqs{name:http://x.test/up}")
    path.write_text(
        path.read_text().replace(
            "iterations = 3\n", 'iterations = 3\ntags = { name = "http://x.test/up" }\n'
        )
    )
    api.load(path)


@pytest.mark.slow
def test_the_url_and_path_filters_select_the_requests(tmp_path: pathlib.Path) -> None:
    with answering(200, 0.0) as url:
        path = _write(tmp_path, f"http_reqs{{url:{url}/up}}")
        text = path.read_text() + '"http_reqs{name:/up}" = ["count==3"]\n'
        path.write_text(text)
        out = api.run(api.load(path), target=url, out=tmp_path / "run", workers=1)
    assert out.exit_code == 0
    summary = json.loads(out.files["summary.json"].read_text())
    assert summary["metrics"][f"http_reqs{{url:{url}/up}}"]["count"] == 3
    assert summary["metrics"]["http_reqs{name:/up}"]["count"] == 3
