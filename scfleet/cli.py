"""The ``scfleet`` command: a thin layer that parses arguments and calls library functions.

Each area contributes its own subcommands through a ``register(subparsers)`` function, so this
module stays a switchboard: ``run`` and ``inspect`` (scfleet.run_cli, scfleet.inspect_cli),
``report``/``compare`` (simulator.report.cli), ``serve``/``accounts`` (reference_server.cli),
``synth`` (audio_synth.cli) and ``hw`` (hw_bridge.cli). A handler takes the parsed namespace and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from scfleet import __version__
from scfleet_core.cli import OneLineParser, forget_caught_interrupt
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
    """The program (``argv`` None: this process's command line, which then exits with the
    code) or one command in-process (``argv`` given: the signal handlers are put back)."""
    signals = _Interrupts()
    code: int | None = None
    try:
        try:
            # importing every command takes a second or more: a Ctrl-C in it is one line too
            args = build_parser().parse_args(argv)
            code = int(args.func(args))
        except ScfleetError as exc:
            sys.stderr.write(f"scfleet: {exc}\n")
            return exc.exit_code
        except KeyboardInterrupt:
            signals.settle()
            sys.stderr.write("scfleet: interrupted\n")
            _leave_if_ray_init_abandoned()
            return EXIT_INTERRUPTED
        finally:
            if argv is None:
                signals.settle()  # on to the exit: a late signal must not kill it (-15)
                forget_caught_interrupt()  # nor one caught on its way (-2, python -m)
            else:
                signals.restore()
    except KeyboardInterrupt:
        # The one raise ours makes (_Interrupts), landed after the command had given our
        # handler back and before the settle above: it escaped main, and Python ended the
        # process by SIGINT (-2; CI, 1 run: a burst of SIGTERMs, 'assert -2 == 105').
        if argv is None:
            signals.settle()
            forget_caught_interrupt()
        else:
            signals.restore()
        if code is None:
            sys.stderr.write("scfleet: interrupted\n")
            return EXIT_INTERRUPTED
    return code


class _Interrupts:
    """SIGTERM is Ctrl-C from the first moment ``main`` runs (the commands' imports, before
    ``run`` installs its own handling): one KeyboardInterrupt, exit 105. Once ``main`` is
    ending, SIGINT/SIGTERM are ignored: the process only exits from there. Before, a burst of
    SIGTERMs killed it (-15, exit 143) after "interrupted": the run's handler went back to the
    default as ``run`` returned, and Python resets its own handlers to the default as it
    finalizes (an ignored signal stays ignored)."""

    def __init__(self) -> None:
        self.saved: list[tuple[int, Any]] = []
        self.count = 0
        if threading.current_thread() is threading.main_thread():
            self.saved.append((signal.SIGTERM, signal.signal(signal.SIGTERM, self._interrupt)))
            self.saved.append((signal.SIGINT, signal.getsignal(signal.SIGINT)))

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt

    def settle(self) -> None:
        for sig, _ in self.saved:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        for sig, old in self.saved:
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


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
