"""Flash N = 1, 4, 8 emulated boards in parallel and compare wall time with N = 1.

Run by hand (not a test)::

    python bench/bench_flash.py                 # paced serial lines at 921600 baud
    python bench/bench_flash.py --no-pace       # unpaced: host CPU is the only limit

Each board gets a ~1.5 MB made-up MicroPython-shaped image plus its LittleFS (2 MB region,
mostly empty) through the real esptool, one spawned process per board, exactly as
``scfleet hw flash`` does. With pacing on, each emulated UART moves 10 bits per byte at the
board's baud rate (115200 until esptool switches it), which is what bounds a real bench; the
goal is that N boards take at most 1.3x the time of one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hw_bridge import flash, images  # noqa: E402
from hw_bridge.emulator.server import start_emulated_boards  # noqa: E402

APP = {"/main.py": b"import scfw.app\nscfw.app.main()\n" * 4, "/scfw/app.py": b"x = 1\n" * 2000}


def run(
    n: int, firmware: bytes, *, baud: int, pace: bool, compress: bool, start_method: str
) -> tuple[float, list[float]]:
    with start_emulated_boards(n, pace=pace) as boards:
        jobs = [
            flash.FlashJob(
                port=h.url,
                index=i + 1,
                firmware=flash.Image(0, firmware, "micropython.bin"),
                app_files=APP,
                config=flash.BoardConfig("bench-{n:03d}", "http://127.0.0.1:9/"),
                baud=baud,
                compress=compress,
            )
            for i, h in enumerate(boards)
        ]
        t0 = time.monotonic()
        tuning = flash.Tuning(start_method=start_method)
        results = flash.flash_boards(jobs, tuning=tuning, display="none")
        wall = time.monotonic() - t0
    bad = [r for r in results if not r.ok]
    if bad:
        raise SystemExit(f"N={n}: {len(bad)} boards failed: {bad[0].error}")
    return wall, [r.seconds for r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,4,8")
    ap.add_argument("--image-bytes", type=int, default=1_500_000)
    ap.add_argument("--baud", type=int, default=921600)
    ap.add_argument("--no-pace", action="store_true")
    ap.add_argument("--no-compress", action="store_true")
    ap.add_argument("--start-method", default="spawn", choices=["spawn", "forkserver"])
    args = ap.parse_args()
    firmware = images.make_test_image(args.image_bytes)
    pace = not args.no_pace
    print(
        f"image {len(firmware)} B, baud {args.baud}, pacing {'on' if pace else 'off'}, "
        f"compress {'off' if args.no_compress else 'on'}, processes by {args.start_method}"
    )
    print(f"{'N':>3} {'wall s':>8} {'ratio':>6} {'board s (mean/max)':>20}")
    base = None
    for n in (int(x) for x in args.sizes.split(",")):
        wall, per_board = run(
            n,
            firmware,
            baud=args.baud,
            pace=pace,
            compress=not args.no_compress,
            start_method=args.start_method,
        )
        base = base or wall
        print(
            f"{n:>3} {wall:>8.2f} {wall / base:>6.2f} "
            f"{statistics.mean(per_board):>10.2f} / {max(per_board):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
