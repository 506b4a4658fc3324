"""A ``socket://`` or ``rfc2217://`` port with a port number out of range (or none) is one
line naming the URL and what is wrong. Found by probe19: ``hw provision
socket://127.0.0.1:99999`` said only pyserial's option syntax, ``'debug|info|warning|error'``.
"""

from __future__ import annotations

import pytest

from hw_bridge import ports
from hw_bridge.boards_section import parse_boards
from scfleet import cli
from scfleet_core.errors import ConfigError
from simulator.config import parse_config


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("socket://127.0.0.1:99999", "port 99999 is out of range 1..65535"),
        ("socket://127.0.0.1:0", "port 0 is out of range 1..65535"),
        ("rfc2217://localhost:70000", "port 70000 is out of range 1..65535"),
        ("socket://127.0.0.1", "expected socket://HOST:PORT"),
        ("socket://:4000", "expected socket://HOST:PORT"),
        ("socket://127.0.0.1:abc", "expected socket://HOST:PORT"),
    ],
)
def test_a_bad_url_is_one_line_naming_it(
    url: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["hw", "provision", url, "--target", "http://127.0.0.1:9", "--device-id", "d1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err == f"scfleet: {url}: {problem}\n"


@pytest.mark.parametrize(
    "url",
    [
        "socket://127.0.0.1:4000",
        "socket://localhost:65535?logging=debug",
        "rfc2217://[::1]:4000",
        "rfc2217://host.lan:4000?ign_set_control",
        "loop://",
    ],
)
def test_a_good_url_is_taken(url: str) -> None:
    assert ports.resolve(url) == url


def test_the_boards_table_names_file_and_key() -> None:
    cfg = parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-vus",
                    "vus": 1,
                    "duration": "1s",
                    "device": {"kind": "iot_upload"},
                }
            },
            "boards": {"ports": ["socket://127.0.0.1:99999"]},
        },
        source="lab.toml",
    )
    with pytest.raises(ConfigError) as exc:  # before: taken, and refused only at connect
        parse_boards(cfg)
    assert str(exc.value) == (
        "lab.toml: boards.ports: socket://127.0.0.1:99999: port 99999 is out of range 1..65535"
    )
