"""A password in the target URL (``http://user:pass@host``) never reaches the output.

Found by ``scfleet run up.toml --target http://alice:s3cr3tPW@127.0.0.1:PORT``: the run went
ahead (the fast client does not send the credentials; aiohttp would, as Basic auth) and the
password was printed in the summary's ``target:`` line and written to summary.txt,
summary.json, config.json, run.ndjson, report.html and every ``url`` tag of metrics.json; a bad
port in such a URL echoed it in the error line too.
"""

from __future__ import annotations

import pathlib

import pytest
from small_run import SMALL_UPLOAD

from scfleet import api
from scfleet.cli import main
from scfleet_core.errors import ConfigError

SECRET = "s3cr3tPW"


def _file(tmp_path: pathlib.Path, extra: str = "") -> pathlib.Path:
    path = tmp_path / "t.toml"
    path.write_text(SMALL_UPLOAD + extra)
    return path


@pytest.mark.parametrize(
    "url",
    [
        f"http://alice:{SECRET}@127.0.0.1:9",
        f"http://{SECRET}@127.0.0.1:9",  # a token as the user name
        f"http://alice:{SECRET}@127.0.0.1:99999",  # and a bad port
        f"http://alice:{SECRET}@[::1",  # and not a URL at all
    ],
)
def test_credentials_in_the_target_url_are_refused_without_echoing_them(
    tmp_path: pathlib.Path, url: str
) -> None:
    with pytest.raises(ConfigError) as flag:
        api.load(_file(tmp_path), target=url)
    with pytest.raises(ConfigError) as key:
        api.load(_file(tmp_path, f'[target]\nurl = "{url}"\n'))
    for err in (flag.value, key.value):
        assert SECRET not in str(err)
        assert "***@" in str(err)


def test_the_cli_says_so_on_one_line_with_exit_104(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path)
    code = main(["run", str(path), "--target", f"http://alice:{SECRET}@127.0.0.1:9"])
    out, err = capsys.readouterr()
    assert code == 104
    assert SECRET not in out + err and len(err.strip().splitlines()) == 1
    assert "--target" in err and "credentials" in err
