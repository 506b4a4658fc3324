"""A real two-node Ray cluster on loopback for the tests, started as the facts say
(``ray start --head --node-ip-address=127.0.0.1 …`` then a second ``ray start --address=…``),
on free ports and in a temp dir of its own, and stopped by its PIDs — never ``ray stop``, which
would stop every other Ray on the machine."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

RAY = Path(sys.executable).with_name("ray")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(n: int, used: set[int]) -> list[int]:
    """``n`` free ports from a random spot in 20000–29999 (below the worker ranges)."""
    out: list[int] = []
    while len(out) < n:
        p = random.randrange(20000, 29999)
        if p not in used and _free(p):
            out.append(p)
            used.add(p)
    return out


def _range(width: int, used: set[int]) -> tuple[int, int]:
    """A block of ``width`` free ports in 40000–59999 for a node's workers."""
    for _ in range(200):
        lo = random.randrange(40000, 60000 - width)
        block = range(lo, lo + width)
        if not used.intersection(block) and all(_free(p) for p in block[:: width // 10]):
            used.update(block)
            return lo, lo + width - 1
    raise RuntimeError("no free port range")


@dataclass
class Cluster:
    gcs: str  # 127.0.0.1:PORT
    client: str  # ray://127.0.0.1:PORT
    temp_dir: Path
    env: dict[str, str]

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its temp dir (gcs_server, raylet, the
        agents, the client server) and all their descendants (the ``ray::`` workers)."""
        mark = str(self.temp_dir)
        roots = []
        for p in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(mark in a for a in p.info["cmdline"] or ()):
                    roots.append(p)
        found = {p.pid: p for p in roots}
        for p in roots:
            with contextlib.suppress(psutil.Error):
                for c in p.children(recursive=True):
                    found[c.pid] = c
        return list(found.values())

    def stop(self) -> None:
        procs = self.processes()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _gone, alive = psutil.wait_procs(procs, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)


@contextlib.contextmanager
def two_node_cluster(cpus_per_node: int = 2) -> Iterator[Cluster]:
    """Head and one more node, both on 127.0.0.1, ``cpus_per_node`` CPUs each."""
    used: set[int] = set()
    # a short path: Ray's unix sockets live under it (108-byte limit)
    temp_dir = Path(tempfile.mkdtemp(prefix="scr", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}
    gcs, client, dashboard, *rest = _ports(3 + 2 * 5, used)
    common = ["--node-ip-address=127.0.0.1", f"--num-cpus={cpus_per_node}"]
    common += ["--disable-usage-stats", f"--temp-dir={temp_dir}"]

    def node_ports(ports: list[int]) -> list[str]:
        lo, hi = _range(200, used)
        return [
            f"--node-manager-port={ports[0]}",
            f"--object-manager-port={ports[1]}",
            f"--dashboard-agent-listen-port={ports[2]}",
            f"--dashboard-agent-grpc-port={ports[3]}",
            f"--runtime-env-agent-port={ports[4]}",
            f"--min-worker-port={lo}",
            f"--max-worker-port={hi}",
        ]

    cluster = Cluster(f"127.0.0.1:{gcs}", f"ray://127.0.0.1:{client}", temp_dir, env)
    try:
        head = [str(RAY), "start", "--head", f"--port={gcs}", f"--ray-client-server-port={client}"]
        head += ["--include-dashboard=false", f"--dashboard-port={dashboard}"]
        head += [*common, *node_ports(rest[:5])]
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
        other = [str(RAY), "start", f"--address={cluster.gcs}", *common, *node_ports(rest[5:])]
        subprocess.run(other, env=env, check=True, capture_output=True, timeout=120)
        _wait_nodes(cluster, 2)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_nodes(cluster: Cluster, n: int, timeout: float = 60) -> None:
    """Until the cluster lists ``n`` live nodes (asked in a child: no Ray in the test)."""
    code = (
        "import ray,sys;ray.init(address=sys.argv[1],logging_level=40);"
        "print(sum(x['Alive'] for x in ray.nodes()))"
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        res = subprocess.run(
            [sys.executable, "-c", code, cluster.gcs],
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if res.returncode == 0 and res.stdout.strip() == str(n):
            return
        time.sleep(0.5)
    raise AssertionError(f"the Ray cluster never showed {n} nodes")
