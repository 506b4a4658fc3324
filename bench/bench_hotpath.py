"""The Python CPU of one iot_upload request's hot path, without sockets: A/B between checkouts.

A socket's write and read cost the same whatever the Python around them, and on a busy machine
their kernel time drowns a few microseconds of Python in ``bench_fleet.py --against``. This
bench runs the real path in-process — ``IotUpload.start`` (device, headers, body), the fast
client's ``submit`` and write, its ``data_received`` parse of the sink's reply, the recording
(``Behaviour.record``, the request and iteration recorders) and the release — on a pooled
connection whose socket swallows writes, the reply fed straight to the protocol. CPU time
(``process_time``) per request, best of ``--rounds`` batches, each checkout in its own process,
processes interleaved; the recorders are folded between batches, outside the timing.

    python bench/bench_hotpath.py --against /work/main [--bodies 1000,32000] [--procs 6]

Run it pinned and at FIFO priority on a busy machine (``taskset -c 0 chrt -f 20 ...``): the
best of each process is then close to the quiet figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sink_server import RESPONSE as SINK_REPLY  # noqa: E402 - the sink's own answer

_BODY = (
    b'{"status": "ok", "duplicate": false, "device_id": "esp32-000001", "sequence": 1, '
    b'"bytes": 1000, "sha256": "' + b"0" * 64 + b'"}'
)
#: the reference server's answer to a stored upload (aiohttp's head, its JSON): what the
#: devices read against ``python -m reference_server`` (``--reply reference``)
REFERENCE_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: %d\r\nDate: Wed, 02 Dec 2026 12:00:00 GMT\r\n"
    b"Server: Python/3.11 aiohttp/3.12.15\r\n\r\n" % len(_BODY)
) + _BODY
REPLIES = {"sink": SINK_REPLY, "reference": REFERENCE_REPLY}

TOML = """
[scenarios.iot_upload]
executor = "constant-arrival-rate"
rate = 4000
duration = "10s"
pre_allocated_devices = 200
max_devices = 200
[scenarios.iot_upload.device]
chunk_bytes = {chunk}
[audio]
profiles = 4
seconds = 5
"""


class _Socket:
    """The asyncio transport under a pooled connection: takes every write, never closes."""

    def writelines(self, parts: object) -> None:
        pass

    def write(self, data: object) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def _measure(toml: Path, n: int, rounds: int, reply: bytes) -> float:
    """Best µs of CPU per request over ``rounds`` batches of ``n`` requests (this process's
    checkout: whatever ``simulator`` imports as)."""
    from simulator.config import load_config
    from simulator.http.fast import FastTransport, _Conn
    from simulator.metrics.registry import IntervalStats, Registry
    from simulator.run.devices import RunContext, make_behaviour
    from simulator.run.runner import build_bank

    url = "http://127.0.0.1:9"  # never connected to: the one connection is made here
    cfg = load_config(toml, target=url)
    reg = Registry()
    tr = FastTransport(url)
    await tr.start()
    ctx = RunContext(reg, tr, build_bank(cfg), loop_to_perf=0.0, target=url)
    beh = make_behaviour(cfg.scenarios[0], ctx, IntervalStats())
    devs = [beh.make_device(i) for i in range(200)]
    conn = _Conn()
    conn.connection_made(_Socket())  # type: ignore[arg-type]
    finished = [0]

    def release() -> None:
        finished[0] += 1

    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for i in range(n):
            tr._idle.append(conn)
            beh.start(devs[i % 200], 0.0, release)
            conn.data_received(reply)
        best = min(best, time.process_time() - t0)
        for rec in reg.recorders:
            rec.flush()
    if tr._sweeper is not None:
        tr._sweeper.cancel()
    if finished[0] != n * rounds:
        raise SystemExit(f"{finished[0]} of {n * rounds} requests finished: the path changed")
    return best / n * 1e6


def _child(args: argparse.Namespace) -> None:
    from simulator.executors.runtime import new_loop

    loop = new_loop()
    try:
        us = loop.run_until_complete(
            _measure(args.toml, args.requests, args.rounds, REPLIES[args.reply])
        )
    finally:
        loop.close()
    print(f"{us:.3f}")


def _run(checkout: Path, toml: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, __file__, "--child", str(toml)]
    cmd += ["--requests", str(args.requests), "--rounds", str(args.rounds), "--reply", args.reply]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if out.returncode:
        raise SystemExit(f"{checkout}: exited {out.returncode}: {out.stderr[-500:]}")
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", type=Path, help="another checkout (its root folder)")
    ap.add_argument("--bodies", default="1000,32000", help="upload sizes in bytes")
    ap.add_argument("--procs", type=int, default=6, help="processes per checkout and size")
    ap.add_argument("--requests", type=int, default=20000, help="requests per batch")
    ap.add_argument("--rounds", type=int, default=5, help="batches per process (best kept)")
    ap.add_argument(
        "--reply", choices=sorted(REPLIES), default="sink", help="the answer each request reads"
    )
    ap.add_argument("--child", type=Path, dest="toml", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.toml is not None:
        return _child(args)
    trees = {"this": ROOT}
    if args.against is not None:
        if not (args.against / "simulator" / "http" / "fast.py").is_file():
            raise SystemExit(f"--against: {args.against} is not a scfleet checkout")
        trees["against"] = args.against.resolve()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for body in (int(b) for b in args.bodies.split(",")):
            toml = Path(d) / f"hot-{body}.toml"
            toml.write_text(TOML.format(chunk=body))
            got: dict[str, list[float]] = {k: [] for k in trees}
            for _ in range(args.procs):  # interleaved: drift in the machine hits both alike
                for k, tree in trees.items():
                    got[k].append(_run(tree, toml, args))
            for k in trees:
                xs = sorted(got[k])
                rows.append(
                    f"| {body:,} B | {k} | {xs[0]:.1f} µs | {xs[len(xs) // 2]:.1f} µs | "
                    f"{xs[-1]:.1f} µs |"
                )
            if "against" in got:
                a, t = min(got["against"]), min(got["this"])
                rows.append(
                    f"| {body:,} B | **this vs against** | **{(t / a - 1) * 100:+.1f} %** | | |"
                )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"\n{args.procs} processes per checkout, best of {args.rounds} × {args.requests:,}, "
        f"the {args.reply} reply ({len(REPLIES[args.reply])} bytes)\n"
    )
    print("| body | checkout | best | median of bests | worst of bests |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
