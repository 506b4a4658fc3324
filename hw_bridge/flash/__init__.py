"""``scfleet hw flash``: write MicroPython, the app filesystem and any images to many boards.

esptool is driven through its Python API (``esptool.cmds``), never by parsing its console
output. The package is split by concern:

- :mod:`~hw_bridge.flash.jobs`: the values (jobs, tuning, progress events, results);
- :mod:`~hw_bridge.flash.operations`: one board's operations on esptool's loader, and the
  procedure that chains them;
- :mod:`~hw_bridge.flash.worker`: the spawned process per board (esptool's logger is a
  process-wide singleton) with a logger that turns esptool's progress into events;
- :mod:`~hw_bridge.flash.runner`: the parallel runner (:func:`flash_boards`);
- :mod:`~hw_bridge.flash.view`: progress bars (plain lines when not on a terminal), the table;
- :mod:`~hw_bridge.flash.cli`: the ``hw flash`` parser and handler.

One board failing never stops the others; the command exits with ``HardwareError``'s code when
any board failed.
"""

from hw_bridge.flash.jobs import (
    DEFAULT_BAUD,
    ROM_BAUD,
    BoardConfig,
    BoardResult,
    FlashJob,
    Image,
    Tuning,
)
from hw_bridge.flash.runner import flash_boards
from hw_bridge.flash.view import render_table

__all__ = [
    "DEFAULT_BAUD",
    "ROM_BAUD",
    "BoardConfig",
    "BoardResult",
    "FlashJob",
    "Image",
    "Tuning",
    "flash_boards",
    "render_table",
]
