"""``scfleet serve --host ''`` (say ``--host "$HOST"`` with HOST unset): a one-line usage error
naming the flag (exit 2), before anything starts. Found by hand (probe19): aiohttp read the
empty address as every interface, so the server listened on 0.0.0.0 and [::] (each on its
own free port) and announced ``READY http://:36541``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reference_server.config import add_server_arguments
from scfleet import cli


@pytest.mark.timeout(20)  # before: the server started and served
@pytest.mark.parametrize("host", ["", " ", "\t"])
def test_an_empty_host_is_a_usage_error(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", "--data-dir", str(tmp_path / "d"), "--host", host])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--host" in err and "0.0.0.0" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()  # refused before the server made anything


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1", "localhost"])
def test_an_address_is_taken(host: str, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    assert parser.parse_args(["--data-dir", str(tmp_path), "--host", host]).host == host
