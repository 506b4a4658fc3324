"""A threshold filtering on an ``error`` the engine never writes is refused at load.

Every request that got no answer is tagged ``error`` with one of a closed set of kinds
(``simulator.http.errors.ErrorKind``: ``refused``, ``timeout``, ``closed-before-answer`` ...).
Before, against a server that closed every connection unanswered, ``http_reqs{error:closed}``
``count<1`` matched no sample and printed "✓ ... observed 0" while
``{error:closed-before-answer}`` counted 5 of 5 requests.
"""

from __future__ import annotations

import pathlib

import pytest

from scfleet_core.errors import ConfigError
from simulator.config import load_config
from simulator.http.errors import ErrorKind
from tests.support.small_run import SMALL_UPLOAD


def _write(tmp_path: pathlib.Path, value: str) -> pathlib.Path:
    p = tmp_path / "t.toml"
    p.write_text(SMALL_UPLOAD + f'[thresholds]\n"http_reqs{{error:{value}}}" = ["count<1"]\n')
    return p


@pytest.mark.parametrize(
    ("value", "says"),
    [("closed", "its values: refused, connect-failed"), ("Timeout", "did you mean timeout?")],
)
def test_an_error_the_engine_never_writes_is_refused(
    tmp_path: pathlib.Path, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, value))
    assert says in str(err.value) and f"error:{value}" in str(err.value), err.value


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_error_the_engine_writes_is_accepted(tmp_path: pathlib.Path, kind: ErrorKind) -> None:
    load_config(_write(tmp_path, kind.tag))
