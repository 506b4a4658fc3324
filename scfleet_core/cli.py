"""The argument parser every command uses, so usage errors look and exit the same everywhere."""

from __future__ import annotations

import argparse
import sys

from scfleet_core.errors import EXIT_USAGE


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit with the documented code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)
