"""``[output] summary_trend_stats`` takes what k6's ``summaryTrendStats`` takes (avg, min, med,
max, count, p(N)) and refuses the rest at load, on one line (exit 104).

Found beside k6 1.1.0: ``summaryTrendStats: ["avg", "rate"]`` k6 refuses before it starts
("invalid trend stat 'rate', unknown format"; k6's exit is 255, scfleet's for a bad file 104).
scfleet accepted ``["avg", "rate"]``, ran the whole schedule and then died writing the summary
with a traceback (``ValueError: unknown trend aggregation 'rate'``, exit 1), leaving a run
folder with ``run.ndjson`` and no ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from small_run import SMALL_RUN

from scfleet.cli import main
from scfleet_core.errors import ConfigError
from simulator.config import load_config

SCENARIO = (
    SMALL_RUN
    + """[output]
summary_trend_stats = {stats}
"""
)


def _write(tmp_path: Path, stats: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO.format(stats=stats))
    return p


@pytest.mark.parametrize("bad", ["rate", "value", " avg", "p( 95 )", "p(95)<1", "p(101)"])
def test_a_statistic_k6_refuses_is_refused_at_load(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, f'["avg", "{bad}"]'))
    assert err.value.exit_code == 104
    assert "output.summary_trend_stats" in str(err.value) and "unknown statistic" in str(err.value)


def test_k6s_statistics_load(tmp_path: Path) -> None:
    stats = ["avg", "min", "med", "max", "count", "p(99.9)", "p(0)", "p(100)"]
    cfg = load_config(_write(tmp_path, repr(stats).replace("'", '"')))
    assert cfg.output.summary_trend_stats == tuple(stats)


def test_the_cli_says_so_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(_write(tmp_path, '["avg", "rate"]'))]) == 104
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'rate'" in err, err
