"""The ``scfleet hw`` command group: physical (and emulated) ESP32 boards.

This module only builds the group; each area module contributes its subcommands through a
``register_hw(subs)`` function listed in :data:`HW_COMMAND_MODULES`, so ``hw list``,
``hw provision``, ``hw monitor`` and ``hw deploy`` can be added without touching the others.
Handlers import their heavy dependencies (esptool, littlefs) themselves.
"""

from __future__ import annotations

import importlib

from scfleet_core.cli import Subparsers

#: Modules contributing ``hw`` subcommands, in ``--help`` order. Add new ones here.
HW_COMMAND_MODULES = ("hw_bridge.flash.cli", "hw_bridge.deploy_cli", "hw_bridge.commands")


def register(subparsers: Subparsers) -> None:
    hw = subparsers.add_parser("hw", help="flash and drive ESP32 boards")
    subs = hw.add_subparsers(dest="hw_command", metavar="HW_COMMAND", parser_class=type(hw))
    subs.required = True
    for name in HW_COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register_hw(subs)
