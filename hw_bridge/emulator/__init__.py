"""Emulated ESP32 boards: the ROM serial loader (and esptool's stub) behind socket:// and
RFC 2217 endpoints, good enough for the unmodified esptool, and a boot into the flashed app.

Typical use::

    from hw_bridge.emulator import start_emulated_boards

    with start_emulated_boards(4, protocol="socket") as boards:
        urls = [b.url for b in boards]      # give these to esptool / scfleet hw flash
        boards[0].board.flash               # the board's 4 MB flash (bytearray)
"""

from hw_bridge.emulator.board import (
    AppRunner,
    BoardFiles,
    EmulatedBoard,
    SerialPort,
    default_app_runner,
)
from hw_bridge.emulator.repl import MicroPythonRepl, ReplOptions
from hw_bridge.emulator.rom import Faults
from hw_bridge.emulator.server import (
    BoardHandle,
    EmulatedBoards,
    EmulatorServer,
    start_emulated_boards,
)

__all__ = [
    "AppRunner",
    "BoardFiles",
    "BoardHandle",
    "EmulatedBoard",
    "EmulatedBoards",
    "EmulatorServer",
    "Faults",
    "MicroPythonRepl",
    "ReplOptions",
    "SerialPort",
    "default_app_runner",
    "start_emulated_boards",
]
