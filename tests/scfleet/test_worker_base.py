"""A worker's base memory (issue 12's bench: 1,000,000 idle devices in <= 1 GB): every
worker imports what it runs and no more. ``urllib.request`` (with ``http.client`` and
``email``, ~2 MiB per process) was imported by ``simulator.run.monitoring`` for the Prometheus
scraper, which only the coordinator uses; a worker imports that module for its generator
sampler."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_a_worker_does_not_import_the_scrapers_http_client() -> None:
    code = (
        "import sys\n"
        "from simulator.run.workers import _worker\n"  # what a spawned worker runs
        "from simulator.http import make_transport\n"
        "from simulator.run.monitoring import GeneratorSampler\n"
        "from simulator.run.runner import Environment, build_bank\n"
        "from simulator.executors.runtime import new_loop\n"
        "print(sorted(m for m in ('urllib.request', 'http.client', 'email') if m in sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
