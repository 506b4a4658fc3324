"""The ``scfleet`` command: a thin layer that parses arguments and calls library functions.

Each area contributes its own subcommands through a ``register(subparsers)`` function, so this
module stays a switchboard: ``run`` and ``inspect`` (scfleet.run_cli, scfleet.inspect_cli),
``report``/``compare`` (simulator.report.cli), ``serve``/``accounts`` (reference_server.cli),
``synth`` (audio_synth.cli) and ``hw`` (hw_bridge.cli). A handler takes the parsed namespace and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from scfleet import __version__
from scfleet_core.cli import OneLineParser
from scfleet_core.errors import EXIT_INTERRUPTED, ScfleetError

#: Modules that contribute subcommands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "scfleet.run_cli",
    "scfleet.inspect_cli",
    "simulator.report.cli",
    "reference_server.cli",
    "audio_synth.cli",
    "hw_bridge.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="scfleet",
        description="SignalCraft Fleet: load-test the SignalCraft audio-analysis server with a "
        "fleet of virtual ESP32 sensors and real boards.",
    )
    parser.add_argument("--version", action="version", version=f"scfleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # importing every command takes a second or more: a Ctrl-C in it is one line too
        args = build_parser().parse_args(argv)
        code = int(args.func(args))
    except ScfleetError as exc:
        sys.stderr.write(f"scfleet: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("scfleet: interrupted\n")
        _leave_if_ray_init_abandoned()
        return EXIT_INTERRUPTED
    return code


def _leave_if_ray_init_abandoned() -> None:
    """After "interrupted" while ``ray.init`` still connects in its thread, Ray's atexit
    ``shutdown`` would log after our line: flush and exit at once, skipping atexit."""
    cluster = sys.modules.get("simulator.run.cluster")  # not imported: no Ray in this process
    if cluster is not None and cluster.init_abandoned():
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
