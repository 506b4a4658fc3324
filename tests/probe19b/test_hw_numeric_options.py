"""``scfleet hw`` numbers are checked as they are parsed: a one-line usage error naming the
option, exit 2, before a port is opened. Found by probe19: ``hw flash --baud 0``,
``--timeout nan``, ``--connect-attempts -1`` (esptool: 0 tries for ever) and
``--micropython 1.x`` were taken, and the flash failed only at connect (exit 1); the other
``hw`` commands took the same numbers (``provision --sample-rate 0``, ``monitor --duration
nan``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from scfleet import cli

PORT = "socket://127.0.0.1:9"  # never reached: the options are refused first


def _flash(tmp_path: Path, *extra: str) -> list[str]:
    firmware = tmp_path / "missing.bin"  # not read either: parsing fails first
    return ["hw", "flash", "--port", PORT, "--firmware", str(firmware), *extra]


CASES = [
    ("flash", "--baud", "0"),
    ("flash", "--baud", "-9600"),
    ("flash", "--baud", "fast"),
    ("flash", "--baud", "99999999999"),
    ("flash", "--timeout", "nan"),
    ("flash", "--timeout", "inf"),
    ("flash", "--timeout", "0"),
    ("flash", "--timeout", "-1"),
    ("flash", "--connect-attempts", "-1"),
    ("flash", "--connect-attempts", "0"),
    ("flash", "--micropython", "1.x"),
    ("flash", "--micropython", "1.27junk"),
    ("provision", "--baud", "0"),
    ("provision", "--timeout", "nan"),
    ("provision", "--sample-rate", "0"),
    ("provision", "--sample-rate", "10000000"),
    ("monitor", "--duration", "nan"),
    ("monitor", "--duration", "-1"),
    ("monitor", "--baud", "0"),
    ("deploy", "--baud", "0"),
    ("deploy", "--timeout", "nan"),
]


def _argv(command: str, option: str, value: str, tmp_path: Path) -> list[str]:
    if command == "flash":
        return _flash(tmp_path, option, value)
    if command == "provision":
        return ["hw", "provision", PORT, "--target", "http://127.0.0.1:9", "--device-id", "d1"] + [
            option,
            value,
        ]
    return ["hw", command, PORT, option, value]


@pytest.mark.timeout(20)  # before: a connect to PORT, then exit 1 (or 104: the firmware)
@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_a_bad_number_is_a_usage_error(
    command: str, option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(_argv(command, option, value, tmp_path))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert option in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("flash", "--baud", "921600"),
        ("flash", "--timeout", "0.5"),
        ("flash", "--connect-attempts", "1"),
        ("flash", "--micropython", "1.27.0"),
        ("flash", "--micropython", "v1.23"),
        ("provision", "--sample-rate", "16000"),
        ("monitor", "--duration", "2.5"),
        ("deploy", "--timeout", "10.0"),
    ],
)
def test_a_good_number_is_taken(command: str, option: str, value: str, tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(_argv(command, option, value, tmp_path))
    attr = option.removeprefix("--").replace("-", "_")
    assert str(getattr(args, attr)) == value


def test_the_sample_rates_are_the_firmwares() -> None:
    from hw_bridge.boardconfig import SAMPLE_RATES

    # by name: MicroPython code, untyped (mypy --strict would follow an import into it)
    board_config = importlib.import_module("firmware.scfw.config")
    assert board_config._LIMITS["sample_rate"] == SAMPLE_RATES
