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


def forget_caught_interrupt() -> None:
    """Tell CPython that no KeyboardInterrupt went unhandled: one that left code ``exec`` built
    from a string (``dataclasses`` and ``namedtuple`` build methods so, as modules import) is
    marked unhandled even when caught later, and ``python -m`` then ends the process by SIGINT
    (-2, exit 130) in place of the code ``main`` returned. Running string code clears the mark."""
    exec("None")  # string code, not a code object: only that path clears the mark
