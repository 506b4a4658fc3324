"""The argument parser every command uses, so usage errors look and exit the same everywhere."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import TypeAlias

from scfleet_core.errors import EXIT_USAGE


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit with the documented code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``lo..hi``; its error names the bound, and the
    parser's the option (a usage error, exit 2), before anything is opened or started."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text[:60]!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def float_min(lo: float, *, strict: bool, hi: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number ``>= lo`` (``> lo`` when ``strict``), at most
    ``hi``; ``nan`` and ``inf`` are refused (a timeout of ``nan`` waited forever or never)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text[:60]!r}") from None
        low = value < lo or (strict and value == lo)
        if not math.isfinite(value) or low or (hi is not None and value > hi):
            bound = f"{'>' if strict else '>='} {lo:g}"
            bound += f" and <= {hi:g}" if hi is not None else ""
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text[:60]}")
        return value

    return parse


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
