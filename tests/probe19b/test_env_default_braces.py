"""``${VAR:-default}`` with braces in the default: they pair up, as in bash and docker
compose, and a ``${`` that never closes is a one-line error naming the file and key. Found by
probe19: ``${PAT:-esp32-{n}}`` ended at the first ``}``, so the default was ``esp32-{n`` and a
stray ``}`` followed (``esp32-{n}}``); an unclosed ``${`` was left in the value as text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scfleet_core.errors import ConfigError
from simulator.config.reader import interpolate_env


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${PAT:-esp32-{n}}", {}, "esp32-{n}"),
        ("${PAT:-esp32-{n:06d}}", {}, "esp32-{n:06d}"),
        ("${PAT:-esp32-{n}}", {"PAT": "lab-{n}"}, "lab-{n}"),
        ("a-${PAT:-{x}{y}}-b", {}, "a-{x}{y}-b"),
        ("${A:-${B:-inner}}", {}, "inner"),
        ("${A:-${B}}", {"B": "b"}, "b"),
        ("${A:-x}}", {}, "x}"),  # a } after the reference is text, as in a shell
        ("$${PAT:-x}", {}, "${PAT:-x}"),
        ("${RATE:-100}", {}, 100),  # one reference: read as TOML
        ("${PAT:-}", {}, ""),
    ],
)
def test_braces_in_a_default_pair_up(text: str, env: dict[str, str], expected: object) -> None:
    assert interpolate_env({"k": text}, env, "f.toml") == {"k": expected}


@pytest.mark.parametrize(
    "text",
    ["${PAT:-esp32-{n}", "${PAT", "id-${PAT:-{", "${A:-${B:-x}"],
)
def test_an_unclosed_reference_names_file_and_key(text: str) -> None:
    with pytest.raises(ConfigError) as exc:  # before: the value kept the text as it was
        interpolate_env({"dev": {"id": text}}, {}, "f.toml")
    msg = str(exc.value)
    assert msg.startswith("f.toml: dev.id: ") and "not closed" in msg and "\n" not in msg


def test_nesting_is_bounded() -> None:
    text = "${A:-" * 5000 + "x" + "}" * 5000
    with pytest.raises(ConfigError, match="nested more than"):
        interpolate_env({"k": text}, {}, "f.toml")


def test_a_scenario_file_default_with_braces(tmp_path: Path) -> None:
    from simulator.config import load_config

    path = tmp_path / "s.toml"
    path.write_text(
        """
[scenarios.up]
executor = "constant-vus"
vus = 1
duration = "1s"
[scenarios.up.device]
kind = "iot_upload"
id_pattern = "${PAT:-esp32-{n:04d}}"
"""
    )
    cfg = load_config(path, env={})
    assert cfg.scenarios[0].device.id_pattern == "esp32-{n:04d}"


@pytest.mark.parametrize(
    "text", ["${WIFI_KEY:-hunter2-secret", "${WIFI KEY:-hunter2-secret}", "${1X:-hunter2-secret}"]
)
def test_a_default_is_never_quoted_in_an_error(text: str) -> None:
    """A default may be a Wi-Fi key or a password: the unclosed-reference error quoted 40
    characters of the value, and a bad name's error the whole reference, default included."""
    with pytest.raises(ConfigError) as exc:
        interpolate_env({"boards": {"wifi_key": text}}, {}, "f.toml")
    assert "hunter2" not in str(exc.value) and "f.toml: boards.wifi_key: " in str(exc.value)
