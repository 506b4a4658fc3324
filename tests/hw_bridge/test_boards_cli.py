"""``scfleet hw provision`` and ``hw monitor`` against an emulated board; ``[boards]`` parsing."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from hw_bridge.appmode import start_app_boards
from hw_bridge.boards_section import BoardsConfig, parse_boards
from hw_bridge.commands import describe
from hw_bridge.fleet import BoardFleet, board_rate
from hw_bridge.link import SerialLink
from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG, ConfigError
from simulator.config import RunConfig, parse_config

KEY = "cli-Key-93f1-hidden"


def hello(url: str) -> dict[str, object]:
    async def go() -> dict[str, object]:
        link = SerialLink(url)
        await link.open()
        try:
            return await link.request("hello", 3)
        finally:
            await link.close()
            link.shutdown()

    return asyncio.run(go())


@pytest.mark.slow
def test_provision_writes_the_config_and_never_echoes_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCFLEET_LAB_KEY", KEY)
    with start_app_boards(1, protocol="rfc2217") as boards:
        url = boards[0].url
        rc = main(
            [
                "hw",
                "provision",
                url,
                "--target",
                "http://10.0.0.2:8080",
                "--device-id",
                "esp32-prov-7",
                "--wifi-ssid",
                "lab",
                "--wifi-key-env",
                "SCFLEET_LAB_KEY",
            ]
        )
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert "esp32-prov-7 -> http://10.0.0.2:8080/api/esp32/audio/upload" in out.out
        assert "key=set" in out.out
        assert KEY not in out.out + out.err
        got = hello(url)
        assert got["device_id"] == "esp32-prov-7" and got["wifi_key_set"] is True
        saved = json.loads(boards[0].board.app_runner.hal.files["/scfw_config.json"])
        assert saved["wifi_ssid"] == "lab" and saved["wifi_key"] == KEY  # on the board only

        monkeypatch.delenv("SCFLEET_LAB_KEY")
        rc = main(
            [
                "hw",
                "provision",
                url,
                "--target",
                "http://h:1",
                "--device-id",
                "x",
                "--wifi-ssid",
                "lab",
                "--wifi-key-env",
                "SCFLEET_LAB_KEY",
            ]
        )
        assert rc == 104 and "SCFLEET_LAB_KEY is not set" in capsys.readouterr().err
    rc = main(
        ["hw", "provision", "socket://127.0.0.1:9", "--target", "http://h:1", "--device-id", "x"]
    )
    assert rc == 1 and "socket://127.0.0.1:9: cannot open" in capsys.readouterr().err


@pytest.mark.slow
def test_monitor_shows_readable_lines_and_passes_text_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with start_app_boards(1) as boards:
        timer = threading.Timer(0.5, lambda: boards[0].reset(download=False))
        timer.start()
        try:
            rc = main(["hw", "monitor", boards[0].url, "--hello", "--duration", "1.2"])
        finally:
            timer.cancel()
    out = capsys.readouterr().out
    assert rc == 0
    assert "hello: fw 0.1.0 on ESP32" in out
    assert "status: idle run 0" in out
    assert "| ets Jul 29 2019" in out  # the ROM's boot text after the reset, as text
    assert out.count("hello: fw") == 2  # asked for, and the boot banner
    assert '{"t"' not in out


def test_describe_makes_short_lines() -> None:
    assert describe(
        {"t": "result", "seq": 3, "status": 200, "latency_us": 41230, "bytes": 32000, "error": None}
    ) == ["#3 200 41.2 ms 32000 B"]
    assert describe(
        {
            "t": "results",
            "items": [
                {
                    "seq": 4,
                    "status": 0,
                    "latency_us": 10,
                    "bytes": 32000,
                    "attempt": 2,
                    "error": "OSError: 113",
                },
                7,
            ],
        }
    ) == ["#4 no answer 0.0 ms 32000 B (attempt 2) OSError: 113", "result (malformed)"]
    assert describe({"t": "log", "level": "warn", "msg": "wifi down"}) == ["[warn] wifi down"]
    assert describe({"t": "mystery", "x": 1}) == ['{"t":"mystery","x":1}']


BASE = {
    "scenarios": {
        "up": {
            "executor": "ramping-arrival-rate",
            "start_rate": 0,
            "pre_allocated_devices": 10,
            "stages": [{"duration": "10s", "target": 20}, {"duration": "10s", "target": 20}],
        },
        "auth": {
            "executor": "constant-vus",
            "vus": 2,
            "duration": "5s",
            "think_time": "0.5s",
            "device": {"kind": "auth_flow"},
        },
    }
}


def cfg(boards: dict[str, object]) -> tuple[RunConfig, BoardsConfig]:
    c = parse_config({**BASE, "boards": boards}, "x.toml")
    b = parse_boards(c)  # the engine carries the table; hw_bridge reads it
    assert b is not None
    return c, b


def test_boards_table_parses_and_names_bad_keys(tmp_path: Path) -> None:
    c, b = cfg(
        {
            "ports": ["emulated:2", "/dev/ttyUSB0"],
            "wifi_ssid": "lab",
            "wifi_key_env": "K",
            "silence": "3s",
        }
    )
    assert b.ports == ("emulated:2", "/dev/ttyUSB0") and b.scenario == "up"
    assert b.silence == 3 and b.rate is None
    # mean rate (0->20 over 10 s, then 20 for 10 s) = 15/s over 10 devices
    sc = c.scenarios[0]
    assert board_rate(sc, None) == pytest.approx(1.5)
    assert board_rate(sc, 2.0) == 2.0
    for bad, where in [
        ({"ports": ["emulated:0"]}, "boards.ports"),
        ({"ports": "emulated:2"}, "boards.ports"),
        ({}, "boards.ports"),
        ({"ports": ["auto"], "scenario": "auth"}, "boards.scenario"),
        ({"ports": ["auto"], "wifi_key": "secret"}, "boards.wifi_key"),
        ({"ports": ["auto"], "rate": 5000}, "boards.rate"),
        ({"ports": ["auto"], "bogus": 1}, "boards.bogus"),
        ({"ports": ["auto"], "target": "10.0.0.1"}, "boards.target"),
    ]:
        with pytest.raises(ConfigError) as err:
            cfg(bad)
        assert where in str(err.value)
        assert "secret" not in str(err.value)


def test_boards_are_checked_when_the_file_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hw_bridge reads ``[boards]`` for the composition root as the file loads, so ``inspect``
    (which contacts nothing) refuses what ``run`` would refuse, before any target."""
    conf = tmp_path / "vus.toml"
    conf.write_text(
        '[scenarios.up]\nexecutor = "constant-vus"\nvus = 2\nduration = "5s"\n'
        '[scenarios.up.device]\nkind = "iot_upload"\n[boards]\nports = ["emulated:1"]\n'
    )
    assert main(["inspect", str(conf)]) == EXIT_INVALID_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(conf) in err and "set boards.rate" in err
    conf.write_text(conf.read_text() + "rate = 2\n")
    assert main(["inspect", str(conf)]) == 0


def test_the_fleet_tells_the_engine_its_open_files() -> None:
    c, b = cfg({"ports": ["emulated:3", "/dev/ttyUSB0", "socket://127.0.0.1:9"]})
    assert BoardFleet(b, c).open_files() == 2 * (3 + 1 + 1)
