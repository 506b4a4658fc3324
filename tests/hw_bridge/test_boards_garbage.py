"""Garbage, half lines and unplugging on the serial stream never crash the bridge."""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from hw_bridge.fleet import BoardDriver, BoardState
from hw_bridge.link import MAX_LINE, LineSplitter, SerialLink, decode_line
from hw_bridge.testing import FakeBoard, FakeOwner, serve_board, wait_until


def test_splitter_joins_half_lines_and_drops_overlong_ones() -> None:
    sp = LineSplitter(max_line=64)
    assert sp.feed(b'{"t":"res') == []
    assert sp.feed(b'ult","seq":1}\r\n{"t"') == [b'{"t":"result","seq":1}']
    assert sp.feed(b"x" * 200) == []  # over-long, no newline yet: discarded as it streams
    assert sp.feed(b"y" * 50 + b"\nok\n") == [b"ok"]  # the rest of it is skipped, then fine
    assert sp.dropped == 1
    assert sp.feed(b"\n\n") == [b"", b""]


def test_decode_line_only_accepts_protocol_objects() -> None:
    assert decode_line(b'{"t":"log","msg":"hi"}') == {"t": "log", "msg": "hi"}
    for junk in (
        b"[1,2]",
        b'{"no_t":1}',
        b'{"t":3}',
        b"{bad json",
        b"\xff\xfe\x00\x1b[2J",
        b"{" * 5000,
    ):
        out = decode_line(junk)
        assert isinstance(out, str)
        assert all(ch.isprintable() or ch == "\t" for ch in out)


def test_link_survives_a_noisy_port_and_reports_the_unplug() -> None:
    """A fake board on socket:// sends noise, split lines and a 1 MB line, then answers."""
    rng = random.Random(5)
    noise = bytes(rng.randrange(256) for _ in range(20000))
    messages: list[dict[str, Any]] = []
    texts: list[str] = []
    closed: list[str] = []
    board = FakeBoard("noisy")

    async def main(url: str) -> None:
        link = SerialLink(
            url, on_message=messages.append, on_text=texts.append, on_closed=closed.append
        )
        # pyserial's socket:// open() discards what is already waiting; speak after it
        await link.open()
        try:
            await asyncio.to_thread(wait_until, lambda: board.attached, 10, lambda: "no host")
            board.write(b"ets Jul 29 2019 12:21:46\r\nrst:0x1 (POWERON_RESET)\r\n" + noise + b"\n")
            board.write(b'{"t":"result","seq":0,"status":200,')  # half a line...
            await asyncio.sleep(0.05)
            board.write(b'"latency_us":1000,"bytes":32000,"error":null,"v":1}\n')  # ...and the rest
            board.write(b"A" * (1 << 20) + b"\n")  # far over the line limit
            board.write(b'{"t":"results","items":[1,"x",{"seq":"a"},null]}\n')
            board.write(b'Traceback (most recent call last):\r\n  File "x"\r\n')
            hello = await link.request("hello", 5)
            assert hello["proto"] == 1
            assert link.is_open
            board.unplug()
            for _ in range(100):
                if closed:
                    break
                await asyncio.sleep(0.05)
            assert closed and not link.is_open
        finally:
            await link.close()
            link.shutdown()

    with serve_board(board) as url:
        asyncio.run(main(url))
    assert {
        "t": "result",
        "seq": 0,
        "status": 200,
        "latency_us": 1000,
        "bytes": 32000,
        "error": None,
        "v": 1,
    } in messages
    assert any(m["t"] == "results" for m in messages)
    assert any("POWERON_RESET" in t for t in texts)
    assert all(len(t) <= MAX_LINE for t in texts)


def test_driver_ingests_only_well_formed_results() -> None:
    fleet = FakeOwner()
    d = BoardDriver(fleet, "emulated:1", "socket://x", "esp32-x")
    d.state, d.run_id = BoardState.RUNNING, 1
    rng = random.Random(1)
    junk: list[Any] = [
        {"t": "result"},
        {"t": "result", "status": "200", "latency_us": 1},
        {"t": "result", "status": True, "latency_us": 1},
        {"t": "results", "items": "nope"},
        {"t": "results", "items": [None, 3, {"status": []}]},
        {"t": "done", "dropped": "many"},
        {"t": "error", "id": None, "code": "bad_json"},
        {"t": "weird"},
    ]
    junk += [
        {"t": rng.choice(["result", "results"]), "items": [os.urandom(3).hex()]} for _ in range(20)
    ]
    for msg in junk:
        d.on_message(msg)
    assert fleet.recorded == [] and d.requests == 0
    d.on_message(
        {
            "t": "result",
            "seq": 4,
            "attempt": 1,
            "status": 200,
            "latency_us": 5000,
            "lag_us": 300,
            "bytes": 32000,
            "error": None,
        }
    )
    d.on_message(
        {
            "t": "results",
            "items": [
                {
                    "seq": 5,
                    "attempt": 1,
                    "status": 0,
                    "latency_us": 9000,
                    "lag_us": -5,
                    "bytes": 32000,
                    "error": "OSError: 111",
                },
                {
                    "seq": 5,
                    "attempt": 2,
                    "status": 503,
                    "latency_us": 800,
                    "bytes": 32000,
                    "error": "HTTP 503",
                },
            ],
        }
    )
    assert fleet.recorded == [
        (200, False, 5000, 300, 32000, True),
        (0, True, 9000, 0, 32000, True),
        (503, True, 800, 0, 32000, False),
    ]
    assert (d.requests, d.ok, d.failed, d.next_seq) == (3, 1, 2, 6)
    d.on_message({"t": "hello", "id": None})  # a boot banner mid-run: it rebooted
    assert d.state == "lost" and fleet.lost == ["rebooted"]


def test_done_ends_a_board_only_at_the_end_of_the_schedule() -> None:
    async def main() -> None:
        fleet = FakeOwner()
        d = BoardDriver(fleet, "b", "socket://x", "esp32-x")
        now = asyncio.get_running_loop().time()
        fleet.schedule_end = now + 10
        fleet.finished_after = now + 9  # last upload due 1 s before the end
        d.state, d.run_id = BoardState.RUNNING, 3
        d.on_message({"t": "done", "run": 2, "dropped": 1})  # an older run: ignored
        assert d.state == "running" and d.dropped == 0
        d.on_message({"t": "done", "run": 3, "dropped": 2})  # 10 s early: it died
        assert d.state == "lost" and fleet.lost == ["its run ended early"]
        d.state = BoardState.RUNNING
        fleet.finished_after = now - 0.1
        d.on_message({"t": "done", "run": 3, "dropped": 0})  # its last upload was sent
        assert d.state == "finished" and d.dropped == 2

    asyncio.run(main())
