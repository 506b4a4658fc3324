"""Audio synthesis speed, as × real time per core (run by hand: ``python bench/bench_synth.py``).

Goal from issue 2: ≥ 2000× real time per core. "Per core" because CPU time is measured with
``time.process_time`` (all threads of this process), so a multi-threaded FFT cannot flatter it.
Also times ``PcmBank.chunk``/``wav``, the only audio work on the engine's hot path.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit

import numpy as np

from audio_synth import Machine, PcmBank, draw_anomaly, normal_clips, render_clip

GOAL = 2000.0


def bench_bank(repeats: int) -> list[float]:
    PcmBank.build(10_000, profiles=1, seconds=30.0)  # warm-up: imports, FFT plans, grid cache
    speeds = []
    for seed in range(repeats):
        cpu = time.process_time()
        wall = time.perf_counter()
        bank = PcmBank.build(seed)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        audio = len(bank.profiles) * bank.loop_bytes / 2 / bank.sample_rate
        speeds.append(audio / cpu)
        faulty = sum(1 for p in bank.profiles if p.anomaly)
        print(
            f"  bank seed={seed}: {audio:.0f} s audio in {cpu * 1e3:.0f} ms CPU "
            f"({wall * 1e3:.0f} ms wall) = {audio / cpu:,.0f}× real time; "
            f"{bank.nbytes / 1e6:.1f} MB; {faulty} faulty profiles"
        )
    return speeds


def bench_clips(count: int, seconds: float, probability: float) -> float:
    machines = [Machine.draw(1, d) for d in range(count)]
    anomalies = [draw_anomaly(m, probability, (1, d, 1)) for d, m in enumerate(machines)]
    render_clip(machines[0], seconds, 16000, np.random.default_rng(0))  # warm-up
    cpu = time.process_time()
    for d, (m, a) in enumerate(zip(machines, anomalies, strict=True)):
        render_clip(m, seconds, 16000, np.random.default_rng(d), anomaly=a)
    cpu = time.process_time() - cpu
    faulty = sum(1 for a in anomalies if a)
    speed = count * seconds / cpu
    print(
        f"  render_clip: {count} × {seconds:g} s ({faulty} faulty) in {cpu * 1e3:.0f} ms CPU "
        f"= {speed:,.0f}× real time"
    )
    return speed


def bench_faults(seconds: float) -> None:
    machine = Machine.draw(1, 0)
    for anomaly in (None, "imbalance", "bearing-outer", "bearing-inner"):
        rngs = [np.random.default_rng(i) for i in range(10)]
        cpu = time.process_time()
        for rng in rngs:
            render_clip(machine, seconds, 16000, rng, anomaly=anomaly)
        cpu = time.process_time() - cpu
        print(f"    {machine.kind}/{anomaly or 'normal':14s} {10 * seconds / cpu:8,.0f}× real time")


def bench_normal_clips(count: int, seconds: float) -> float:
    cpu = time.process_time()
    normal_clips(2, count, seconds)
    cpu = time.process_time() - cpu
    speed = count * seconds / cpu
    print(f"  normal_clips: {count} × {seconds:g} s = {speed:,.0f}× real time")
    return speed


def bench_hot_path() -> None:
    bank = PcmBank.build(1)
    n = 200_000
    per_chunk = timeit.timeit(lambda: bank.chunk(123_457, 99, 32_000), number=n) / n
    per_wav = timeit.timeit(lambda: bank.wav(123_457, 99, 320_000), number=n) / n
    print(f"  chunk(): {per_chunk * 1e6:.2f} µs/call; wav(): {per_wav * 1e6:.2f} µs/call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    print("PcmBank.build (16 profiles × 30 s, defaults):")
    bank = bench_bank(args.repeats)
    print("clip rendering (mixed fleet, anomaly probability 0.2):")
    clips = bench_clips(args.clips, args.seconds, 0.2)
    bench_faults(args.seconds)
    normal = bench_normal_clips(args.clips // 2, args.seconds)
    print("engine hot path:")
    bench_hot_path()
    print()
    median = statistics.median(bank)
    for name, speed in (
        ("bank build (median)", median),
        ("bank build (best)", max(bank)),
        ("render_clip", clips),
        ("normal_clips", normal),
    ):
        verdict = "meets" if speed >= GOAL else "MISSES"
        print(f"{name:22s} {speed:8,.0f}× real time per core  ({verdict} the {GOAL:,.0f}× goal)")


if __name__ == "__main__":
    main()
