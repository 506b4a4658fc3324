"""The board's configuration document, and the Wi-Fi key that goes into it — each said once.

The firmware reads the same keys from two places (``firmware/scfw/config.py``): the file
``/scfw_config.json`` that ``hw flash`` writes into the board's filesystem, and the protocol's
``config`` command that ``hw provision`` and a mixed run (``fleet.py``) send. Both are built
from one :class:`BoardSettings`; unset fields are left out, so the board keeps its own value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scfleet_core.errors import ConfigError
from scfleet_core.secrets import Secret

#: Where the board keeps its configuration (``firmware/scfw/config.py`` ``FILE``).
CONFIG_PATH = "/scfw_config.json"
#: The sample rates the firmware's ``config`` takes (``firmware/scfw/config.py`` ``_LIMITS``,
#: MicroPython code this side does not import; ``tests/probe19b`` checks the two agree).
SAMPLE_RATES = (1000, 96000)
#: The file's format version (the firmware ignores keys it does not know, this one included).
FILE_VERSION = 1


@dataclass(frozen=True)
class BoardSettings:
    """Configuration values for one board; ``None`` means "not set here"."""

    device_id: str
    target: str
    wifi_ssid: str | None = None
    wifi_key: Secret | None = None
    sample_rate: int | None = None
    chunk_bytes: int | None = None
    keep_alive: bool | None = None
    headers: Mapping[str, str] | None = None
    timeout_s: float | None = None

    def fields(self) -> dict[str, Any]:
        """The set values, for the ``config`` command. The Wi-Fi key is revealed here (the
        board needs it): the result goes onto the wire only, never into a log."""
        out: dict[str, Any] = {"device_id": self.device_id, "target": self.target}
        optional: dict[str, Any] = {
            "wifi_ssid": self.wifi_ssid,
            "wifi_key": self.wifi_key.reveal() if self.wifi_key is not None else None,
            "sample_rate": self.sample_rate,
            "chunk_bytes": self.chunk_bytes,
            "keep_alive": self.keep_alive,
            "headers": dict(self.headers) if self.headers is not None else None,
            "timeout_s": self.timeout_s,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        return out

    def file_bytes(self) -> bytes:
        """The content of :data:`CONFIG_PATH` (holds the Wi-Fi key: goes into flash only)."""
        doc = {"v": FILE_VERSION, **self.fields()}
        return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


#: A key file's most: a WPA2 key is 8..63 characters or 64 hex digits; room for a newline,
#: comments none (the whole file, stripped, is the key)
MAX_KEY_FILE_BYTES = 4096


def read_wifi_key(
    env_var: str | None, file: Path | None, *, env_key: str, source: str | None = None
) -> Secret | None:
    """The Wi-Fi key from an environment variable or a file (never from a scenario file or a
    command line); ``None`` when neither is given. Errors name ``source``/``env_key`` for the
    variable and the file for the file, never the value."""
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise ConfigError(
                f"environment variable {env_var} is not set", source=source, key=env_key
            )
        return Secret(value)
    if file is not None:
        try:
            with file.open("rb") as fh:
                raw = fh.read(MAX_KEY_FILE_BYTES + 1)
            if len(raw) > MAX_KEY_FILE_BYTES:  # /dev/zero was read until memory ran out
                raise ConfigError(
                    f"larger than any Wi-Fi key ({MAX_KEY_FILE_BYTES} bytes at most)",
                    source=str(file),
                )
            return Secret(raw.decode().strip())
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", source=str(file)) from None
        except UnicodeDecodeError:  # its message quotes a byte of the key
            raise ConfigError("cannot read: not UTF-8 text", source=str(file)) from None
    return None


__all__ = ["CONFIG_PATH", "BoardSettings", "read_wifi_key"]
