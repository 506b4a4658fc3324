"""The board side of a mixed run on the shipped fakes (``hw_bridge.testing``): no sockets, no
emulator. A board's dropped chunks reach ``dropped_iterations`` (issue 9)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hw_bridge.boards_section import parse_boards
from hw_bridge.fleet import BoardFleet, BoardState
from hw_bridge.testing import FakeBoard, fake_links
from simulator.config import parse_config
from simulator.http import FakeTransport
from simulator.run.runner import Environment, build_bank


def _cfg(ports: list[str]) -> Any:
    # A closed-model scenario (constant-vus) never drops: every dropped iteration is a board's.
    return parse_config(
        {
            "scenarios": {
                "up": {
                    "executor": "constant-vus",
                    "vus": 1,
                    "duration": "1.5s",
                    "think_time": "0.5s",
                    "device": {"kind": "iot_upload", "chunk_bytes": 64},
                }
            },
            "boards": {"ports": ports, "rate": 4},
        }
    )


def _run(cfg: Any, boards: dict[str, FakeBoard]) -> tuple[Any, BoardFleet]:
    env = Environment(
        cfg, FakeTransport(keep=False), bank=build_bank(cfg), tick=0.2, target="http://127.0.0.1:9"
    )
    fleet = BoardFleet(parse_boards(cfg), cfg, link_factory=fake_links(boards))
    env.companions.append(fleet)
    return asyncio.run(env.run()), fleet


@pytest.mark.slow  # a ~1.7 s run with boards: the fast tier stays under 60 s
def test_a_boards_dropped_chunks_are_dropped_iterations_of_its_scenario() -> None:
    boards = {"socket://b1:1": FakeBoard("b1", dropped=3), "socket://b2:2": FakeBoard("b2")}
    result, fleet = _run(_cfg(list(boards)), boards)
    assert result.error is None
    dropped = result.registry.merged("dropped_iterations", {"scenario": "up"})
    assert dropped is not None and dropped.value == 3
    rows = {r.board: r for r in fleet.device_rows()}
    assert rows["socket://b1:1"].dropped_chunks == 3
    assert rows["socket://b2:2"].dropped_chunks == 0
    assert all(r.state == "finished" for r in rows.values())
    # both were provisioned like a device of the followed scenario, then started on time
    for b in boards.values():
        assert b.commands[:3] == ["hello", "stop", "config"] and b.config["chunk_bytes"] == 64
        assert len(b.starts) == 1 and b.starts[0]["rate"] == 4
    assert rows["socket://b1:1"].requests >= 4


@pytest.mark.slow  # a ~1.7 s run with boards: the fast tier stays under 60 s
def test_a_board_that_cannot_open_is_lost_and_the_others_run() -> None:
    boards = {"socket://b1:1": FakeBoard("b1")}
    result, fleet = _run(_cfg(["socket://b1:1", "socket://absent:3"]), boards)
    assert result.error is None
    states = {d.label: d.state for d in fleet.drivers}
    assert states == {"socket://b1:1": BoardState.FINISHED, "socket://absent:3": BoardState.LOST}
    assert any("socket://absent:3" in n and "lost" in n for n in result.notes)
