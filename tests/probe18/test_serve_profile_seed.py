"""``scfleet serve --profile-seed -1``: a one-line usage error naming the flag (exit 2), before
anything starts. Found by hand: the flag took any int, and the server died in its start-up
(building the normal-sound profile) with ``ValueError: seed must be non-negative, got -1``
and a traceback through aiohttp's startup, exit 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scfleet import cli


@pytest.mark.parametrize("seed", ["-1", "-99999999999999999999", "x"])
def test_a_bad_profile_seed_is_a_usage_error(
    seed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve", "--data-dir", str(tmp_path / "d"), "--profile-seed", seed])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--profile-seed" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "d").exists()  # refused before the server made anything
