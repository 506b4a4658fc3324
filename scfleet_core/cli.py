"""The argument parser every command uses, so usage errors look and exit the same everywhere."""

from __future__ import annotations

import argparse
import sys
from typing import TypeAlias

from scfleet_core.errors import EXIT_USAGE


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit with the documented code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


#: What each area's ``register(sub)`` is handed: the switchboard's subcommands (``scfleet/cli.py``)
#: or a group's (``hw``), where it adds its parsers.
#: (A string: argparse's class is not subscriptable at run time; annotations only.)
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
