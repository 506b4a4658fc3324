"""Discovery: stable board names from pyserial's list_ports, port specs, the board registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from serial.tools.list_ports_common import ListPortInfo

from hw_bridge import ports
from hw_bridge.fleet import load_registry
from scfleet_core.errors import ConfigError, HardwareError

ROOT = Path(__file__).resolve().parents[2]


def info(
    device: str,
    vid: int | None,
    pid: int | None,
    serial: str | None = None,
    location: str | None = None,
) -> ListPortInfo:
    i = ListPortInfo(device, skip_link_detection=True)
    i.vid, i.pid, i.serial_number, i.location = vid, pid, serial, location
    i.description = "USB serial"
    return i


FLEET = [
    info("/dev/ttyUSB3", 0x10C4, 0xEA60, "0001A2B3", "1-2.1:1.0"),
    info("/dev/ttyUSB0", 0x1A86, 0x7523, None, "1-2.3:1.0"),  # CH340: no serial number
    info("/dev/ttyACM0", 0x303A, 0x1001, "24:0A:C4:12:34:56", "3-1:1.0"),
    info("/dev/ttyUSB1", 0x1A86, 0x55D4, "5434012345", "1-4:1.0"),
    info("/dev/ttyUSB2", 0x0403, 0x6015, "DN0ABCDE", "1-5:1.0"),
    info("/dev/ttyS0", None, None),  # a motherboard UART: not a board
    info("/dev/ttyACM1", 0x2341, 0x0043, "ARDUINO1", "1-6:1.0"),  # an Arduino: not an ESP32
]


def test_names_are_stable_serial_or_usb_location_never_the_tty() -> None:
    boards = {b.device: b for b in ports.list_boards(FLEET)}
    assert set(boards) == {
        "/dev/ttyUSB3",
        "/dev/ttyUSB0",
        "/dev/ttyACM0",
        "/dev/ttyUSB1",
        "/dev/ttyUSB2",
    }
    assert boards["/dev/ttyUSB3"].name == "sn-0001A2B3"
    assert boards["/dev/ttyUSB0"].name == "usb-1-2.3"
    assert boards["/dev/ttyACM0"].name == "sn-24-0A-C4-12-34-56"
    assert boards["/dev/ttyUSB3"].bridge == "CP210x"
    assert boards["/dev/ttyUSB1"].bridge == "CH9102"
    assert boards["/dev/ttyACM0"].usb_id == "303A:1001"
    assert all("tty" not in b.name for b in boards.values())


def test_replugging_into_other_ttys_keeps_the_names() -> None:
    before = {b.name for b in ports.list_boards(FLEET)}
    shuffled = [
        info(f"/dev/ttyUSB{9 - n}", i.vid, i.pid, i.serial_number, i.location)
        for n, i in enumerate(FLEET)
    ]
    assert {b.name for b in ports.list_boards(shuffled)} == before


def test_a_shared_default_serial_falls_back_to_the_usb_location() -> None:
    twins = [
        info("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "1-1:1.0"),
        info("/dev/ttyUSB1", 0x10C4, 0xEA60, "0001", "1-2:1.0"),
        info("/dev/ttyUSB2", 0x10C4, 0xEA64, "0002", None),
    ]
    names = sorted(b.name for b in ports.list_boards(twins))
    assert names == ["sn-0002", "usb-1-1", "usb-1-2"]


@pytest.mark.parametrize(
    ("vid", "pid"),
    [
        (0x10C4, 0xEA60),
        (0x10C4, 0xEA64),
        (0x1A86, 0x7523),
        (0x1A86, 0x7522),
        (0x1A86, 0x55D4),
        (0x0403, 0x6001),
        (0x0403, 0x6010),
        (0x0403, 0x6011),
        (0x0403, 0x6014),
        (0x0403, 0x6015),
        (0x303A, 0x1001),
        (0x303A, 0x0002),
        (0x303A, 0x4001),
    ],
)
def test_every_known_bridge_is_a_board(vid: int, pid: int) -> None:
    assert [b.device for b in ports.list_boards([info("/dev/x", vid, pid, "S1")])] == ["/dev/x"]


def test_resolve_specs() -> None:
    assert ports.resolve("socket://127.0.0.1:4000", FLEET) == "socket://127.0.0.1:4000"
    assert ports.resolve("rfc2217://10.0.0.5:4000", FLEET) == "rfc2217://10.0.0.5:4000"
    assert ports.resolve("/dev/ttyUSB7", FLEET) == "/dev/ttyUSB7"
    assert ports.resolve("usb-1-2.3", FLEET) == "/dev/ttyUSB0"
    assert ports.resolve("sn-0001A2B3", FLEET) == "/dev/ttyUSB3"
    with pytest.raises(HardwareError, match="5 boards found"):
        ports.resolve("auto", FLEET)
    assert ports.resolve("auto", FLEET[:1]) == "/dev/ttyUSB3"
    with pytest.raises(HardwareError, match="no ESP32 board"):
        ports.resolve("auto", FLEET[5:])
    with pytest.raises(HardwareError, match="sn-nope: no such board"):
        ports.resolve("sn-nope", FLEET)
    assert [label for label, _ in ports.expand(["auto", "socket://h:1"], FLEET)] == [
        "sn-0001A2B3",
        "sn-24-0A-C4-12-34-56",
        "sn-5434012345",
        "sn-DN0ABCDE",
        "usb-1-2.3",
        "socket://h:1",
    ]


def test_the_example_registry_parses_and_duplicates_are_refused(tmp_path: Path) -> None:
    reg = load_registry(ROOT / "configs" / "boards.toml")
    assert reg["emulated:3"] == "esp32-emu-003"
    assert reg["sn-0001A2B3"] == "esp32-lab-001"
    assert reg["rfc2217://192.168.1.20:4000"] == "esp32-remote-001"
    bad = tmp_path / "b.toml"
    bad.write_text(
        '[[board]]\nport = "a"\ndevice_id = "x"\n[[board]]\nport = "b"\ndevice_id = "x"\n'
    )
    with pytest.raises(ConfigError, match="used twice"):
        load_registry(bad)
