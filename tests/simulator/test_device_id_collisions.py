"""Every way two senders of ``X-Sequence`` in one run could present one ``X-Device-ID`` is
refused at load (simulator.config.device_ids), beyond two scenarios with one pattern
(test_shared_device_ids): patterns that differ but render the same ID, a pattern that renders one
ID for two devices, a Python device beside an upload scenario. The reference server
de-duplicates (device, sequence) after stripping the ID, so each of these stored one sender's
uploads as the other's retries while the summary counted every 200."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from id_scenarios import arrival as _arrival
from id_scenarios import cli_refusal, refused

from scfleet_core.errors import ConfigError
from simulator.config import parse_config

API_CLASS = "python:simulator.builtin_devices:IotUpload"


def _refused(scenarios: dict[str, Any]) -> str:
    text = refused(scenarios, "ids.toml")
    assert text.startswith("ids.toml: scenarios.") and "\n" not in text
    return text


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        ({}, {"id_pattern": "esp32-{n:06}"}, "esp32-000001"),  # 'd' said or not
        (
            {"id_pattern": "dev-{n}", "id_start": 8},
            {"id_pattern": "dev-{n:02d}", "id_start": 10},
            "dev-10",
        ),
        ({}, {"id_pattern": "esp32-00000{n}"}, "esp32-000001"),  # a literal of padding
        ({"id_pattern": "esp32-{n:x}"}, {"id_pattern": "esp32-{n}"}, "esp32-1"),  # hex 1..5
        (
            {"id_pattern": "esp32-{n:x}", "id_start": 16},
            {"id_pattern": "esp32-{n}", "id_start": 10},
            "esp32-10",
        ),
        ({}, {"id_pattern": " esp32-{n:06d} "}, "esp32-000001"),  # the server strips the ID
        ({"id_pattern": "lab-{n}0"}, {"id_pattern": "lab-1{n}", "id_start": 0}, "lab-10"),
    ],
)
def test_different_patterns_that_render_one_id_are_refused_naming_it(
    a: dict[str, Any], b: dict[str, Any], shared: str
) -> None:
    text = _refused({"a": _arrival(**a), "b": _arrival(**b)})
    assert "'a'" in text and "'b'" in text and repr(shared) in text


def test_a_pattern_that_renders_one_id_for_two_devices_is_refused() -> None:
    text = _refused({"a": _arrival(id_pattern="esp32-lab")})
    assert "scenarios.a.device.id_pattern" in text and "'esp32-lab'" in text
    assert "n=1 and n=2" in text
    text = _refused({"a": _arrival(id_pattern="d-{n:.1e}", id_start=100)})  # 1.0e+02 twice
    assert "'d-1.0e+02'" in text and "n=100 and n=101" in text


def test_a_python_device_beside_an_upload_scenario_is_refused() -> None:
    """The shipped IotUpload class (and the README's example) send X-Sequence from 0."""
    text = _refused({"a": _arrival(), "b": {**_arrival(), "device": {"kind": API_CLASS}}})
    assert "'a'" in text and "'b'" in text and "id_start = 6" in text


@pytest.mark.parametrize(
    "b",
    [
        _arrival(id_pattern="esp32-{n:05d}"),  # 'esp32-00001' is not 'esp32-000001'
        _arrival(id_pattern="dev-{n:02d}"),
        _arrival(id_pattern="esp32-{n}", id_start=1000000),  # 7 digits, a's 6
        {**_arrival(), "device": {"kind": API_CLASS, "id_start": 6}},
        {**_arrival(), "device": {"kind": "ai_analysis", "id_pattern": "esp32-{n:06}"}},
        {
            "executor": "constant-vus",
            "vus": 1,
            "duration": "1s",
            "device": {"kind": "iot_upload", "id_pattern": "esp32-lab"},
        },  # one device
    ],
)
def test_ids_that_differ_load(b: dict[str, Any]) -> None:
    cfg = parse_config({"scenarios": {"a": _arrival(), "b": b}}, "ids.toml")
    assert [s.name for s in cfg.scenarios] == ["a", "b"]


def test_the_rendered_sets_are_compared_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Different plain patterns are compared by parsing one's IDs with the other's pattern (no
    set, one pass); literal text that rules any common ID out renders nothing."""
    from simulator.config import device_ids
    from simulator.config.device_ids import IdRange, clash

    big = 100_000
    a = IdRange("a", "esp32-{n:05d}", 1, big)
    assert clash(a, IdRange("b", "esp32-{n:07d}", 1, big)) is None
    assert clash(a, IdRange("b", "esp32-{n}", big, 2 * big)) == (big, big, "esp32-100000")
    assert clash(IdRange("a", "x{n:o}", 8, 9), IdRange("b", "x{n}", 10, 11)) == (8, 10, "x10")
    calls: list[int] = []
    real = device_ids.rendered
    monkeypatch.setattr(device_ids, "rendered", lambda p, n: calls.append(n) or real(p, n))
    assert clash(a, IdRange("b", "sensor-{n}", 1, big)) is None  # 'esp32-' vs 'sensor-'
    assert clash(a, IdRange("b", "esp32-{n:05d}", big + 1, 2 * big)) is None  # one pattern
    assert calls == []


def test_the_cli_refuses_it_on_one_line_with_exit_104(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = cli_refusal(
        tmp_path / "ids.toml",
        "1s",
        {"first": 'id_pattern = "esp32-{n:06d}"\n', "second": 'id_pattern = "esp32-{n:06}"\n'},
        capsys,
    )
    assert "'esp32-000001'" in err


def _boards_cfg(tmp_path: pathlib.Path, boards: dict[str, Any]) -> Any:
    path = tmp_path / "mixed.toml"
    path.write_text("")
    up = {
        "executor": "constant-vus",
        "vus": 3,
        "duration": "1s",
        "device": {"kind": "iot_upload", "chunk_bytes": 64},
    }
    return parse_config({"scenarios": {"up": up}, "boards": boards}, str(path))


@pytest.mark.parametrize(
    ("boards", "registry"),
    [
        ({"device_id_pattern": "esp32-{n:06d}"}, None),  # board 1 is virtual device 1
        ({}, 'board = [{ port = "socket://b1:1", device_id = "esp32-000003" }]\n'),
    ],
)
def test_a_board_with_a_virtual_devices_id_is_refused_at_load(
    tmp_path: pathlib.Path, boards: dict[str, Any], registry: str | None
) -> None:
    """Boards named by the file (ports, the registry) have their IDs checked when it is
    loaded (api.load builds the fleet): the one line names the board, the scenario, the ID."""
    from scfleet import api

    if registry is not None:
        (tmp_path / "boards.toml").write_text(registry)
        boards = {**boards, "registry": "boards.toml"}
    path = tmp_path / "mixed.toml"
    lines = [
        '[scenarios.up]\nexecutor = "constant-vus"\nvus = 3\nduration = "1s"',
        '[scenarios.up.device]\nkind = "iot_upload"\nchunk_bytes = 64',
        '[boards]\nports = ["socket://b1:1"]\nrate = 4',
        *(f"{k} = {v!r}".replace("'", '"') for k, v in boards.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        api.load(path)
    text = str(err.value)
    assert "socket://b1:1" in text and "'up'" in text and "'esp32-00000" in text
    assert str(path) in text and "\n" not in text


def test_an_auto_boards_virtual_id_is_refused_before_anything_is_sent(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` ports are listed only when the run prepares its boards: the run stops there,
    before the transport starts, naming the board, the scenario and the ID."""
    import asyncio

    from hw_bridge import ports
    from hw_bridge.boards_section import parse_boards
    from hw_bridge.fleet import BoardFleet
    from hw_bridge.testing import FakeBoard, fake_links
    from simulator.http import FakeTransport
    from simulator.run.runner import Environment, build_bank

    plugged = ports.BoardPort("sn-1", "socket://b1:1", None, None, "cp210x", "1", None, "fake")
    monkeypatch.setattr(ports, "list_boards", lambda *a, **k: [plugged])
    cfg = _boards_cfg(
        tmp_path, {"ports": ["auto"], "rate": 4, "device_id_pattern": "esp32-{n:06d}"}
    )
    transport = FakeTransport()
    env = Environment(cfg, transport, bank=build_bank(cfg), tick=0.2, target="http://127.0.0.1:9")
    board = FakeBoard("b1")
    env.companions.append(
        BoardFleet(parse_boards(cfg), cfg, link_factory=fake_links({"socket://b1:1": board}))
    )
    with pytest.raises(ConfigError) as err:
        asyncio.run(env.run())
    text = str(err.value)
    assert "sn-1" in text and "'up'" in text and "'esp32-000001'" in text
    assert str(tmp_path / "mixed.toml") in text and "\n" not in text
    assert transport.requests == [] and board.starts == []
