"""The exception tree and exit codes.

Every error a user can cause derives from :class:`ScfleetError` and carries a one-line message
that names the file, key, port or URL at fault; the CLI prints ``scfleet: <message>`` and exits
with the error's ``exit_code``. Anything else escaping is a bug.

Exit codes follow k6 where k6 has one:

====  =====================================================================
0     success, every threshold passed
1     a hardware operation failed (a board did not flash, a port is missing)
2     command-line usage error (argparse)
99    one or more thresholds failed (k6: ThresholdsHaveFailed)
103   the run could not start or went wrong at run time (k6: GenericEngine),
      e.g. the target is unreachable
104   invalid configuration (k6: InvalidConfig)
105   interrupted by the user, Ctrl-C (k6: ExternalAbort); results are still written
107   a Python device's code failed to load: a syntax error, an exception at import
      (k6: ScriptException, a script that fails at init)
====  =====================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_HARDWARE = 1
EXIT_USAGE = 2
EXIT_THRESHOLDS_FAILED = 99
EXIT_ENGINE = 103
EXIT_INVALID_CONFIG = 104
EXIT_INTERRUPTED = 105
EXIT_SCRIPT = 107


class ScfleetError(Exception):
    """Base of every user-facing error; ``str(err)`` is the one-line message."""

    exit_code = EXIT_ENGINE


class ConfigError(ScfleetError):
    """A scenario file, override or option is wrong; the message names the file and key."""

    exit_code = EXIT_INVALID_CONFIG

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.key = key


class ScriptError(ConfigError):
    """A Python device's code failed to load (a syntax error, an exception at import, a module
    it imports missing): k6's ScriptException, exit 107 as a k6 script failing at init. Still a
    ConfigError (one line naming the file, before anything is contacted); a scenario file
    naming a file, module or class that is not there stays a plain ConfigError (104)."""

    exit_code = EXIT_SCRIPT


class TargetError(ScfleetError):
    """The target server cannot be reached or did not become healthy; names the URL."""

    exit_code = EXIT_ENGINE


class ClusterError(ScfleetError):
    """The cluster (Ray) cannot be reached or cannot run the workers as this process would:
    names the address or the worker."""

    exit_code = EXIT_ENGINE


class HardwareError(ScfleetError):
    """A serial port, board or flash operation failed; names the port."""

    exit_code = EXIT_HARDWARE
