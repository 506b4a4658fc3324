"""``scfleet synth``: write machine-sound clips and a labels CSV so a person can listen to them.

numpy is imported inside the handler so ``scfleet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from audio_synth.machine import ISOLATED_MODELS, MODELS, STREAM_ANOMALY, STREAM_CLI_RENDER
from audio_synth.wav import wav_header
from scfleet_core.cli import Subparsers
from scfleet_core.errors import ConfigError

FORMATS = ("wav", "raw")
MAX_COUNT = 100_000
MAX_SECONDS = 3600.0


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic machine-sound clips (WAV or raw PCM) and labels.csv",
        description=(
            "Render one clip per device of a deterministic fleet: motor hum, shaft tones, fan and "
            "valve sounds, bearing faults, mixed with factory noise at an SNR. Models: mixed "
            "(any fault), bearing-outer|bearing-inner|imbalance (faults of that kind only), "
            "hum|fan|valve (that source alone, always normal)."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--count", type=int, default=10, help="number of clips (default 10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="fleet seed (default 0)")
    parser.add_argument("--first-device", type=int, default=0, help="index of the first device")
    parser.add_argument("--format", default="wav", metavar="{wav,raw}", help="default wav")
    parser.add_argument("--sample-rate", type=int, default=16000, help="default 16000")
    parser.add_argument("--snr-db", type=float, default=6.0, help="machine vs factory noise")
    parser.add_argument(
        "--anomaly-probability", type=float, default=0.2, help="chance a clip is faulty"
    )
    parser.add_argument(
        "--model", default="mixed", metavar="{" + ",".join(MODELS) + "}", help="default mixed"
    )
    parser.set_defaults(func=handle)


def _validate(args: argparse.Namespace) -> None:
    def bad(option: str, message: str) -> ConfigError:
        return ConfigError(message, key=option)

    if args.format not in FORMATS:
        raise bad("--format", f"must be one of {', '.join(FORMATS)}, got {args.format!r}")
    if args.model not in MODELS:
        raise bad("--model", f"must be one of {', '.join(MODELS)}, got {args.model!r}")
    if not 1 <= args.count <= MAX_COUNT:
        raise bad("--count", f"must be within 1..{MAX_COUNT}, got {args.count}")
    if not (math.isfinite(args.seconds) and 0.01 <= args.seconds <= MAX_SECONDS):
        raise bad("--seconds", f"must be within 0.01..{MAX_SECONDS:g}, got {args.seconds}")
    if args.seed < 0:
        raise bad("--seed", f"must be non-negative, got {args.seed}")
    if args.first_device < 0:
        raise bad("--first-device", f"must be non-negative, got {args.first_device}")
    if not 8000 <= args.sample_rate <= 48000:
        raise bad("--sample-rate", f"must be within 8000..48000, got {args.sample_rate}")
    if not (math.isfinite(args.snr_db) and -40.0 <= args.snr_db <= 60.0):
        raise bad("--snr-db", f"must be within -40..60, got {args.snr_db}")
    if not 0.0 <= args.anomaly_probability <= 1.0:
        raise bad("--anomaly-probability", f"must be within 0..1, got {args.anomaly_probability}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise bad("--out", f"{out} exists and is not a folder")


def handle(args: argparse.Namespace) -> int:
    _validate(args)
    import numpy as np

    from audio_synth.machine import Machine, draw_anomaly
    from audio_synth.render import render_clip

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror}", key="--out") from None
    fields = ["file", "device", "label", "anomaly", "snr_db", "seconds", "sample_rate"]
    rows: list[dict[str, str]] = []
    for i in range(args.count):
        device = args.first_device + i
        machine = Machine.draw(args.seed, device, args.model)
        # One clip per device here, so drawing the condition per clip is drawing it per device.
        anomaly = draw_anomaly(
            machine, args.anomaly_probability, (args.seed, device, STREAM_ANOMALY)
        )
        rng = np.random.default_rng([args.seed, device, STREAM_CLI_RENDER])
        pcm, label = render_clip(
            machine, args.seconds, args.sample_rate, rng, anomaly=anomaly, snr_db=args.snr_db
        )
        name = f"device-{device:06d}.{args.format}"
        data = pcm.astype("<i2", copy=False).tobytes()
        try:
            with open(out / name, "wb") as fh:
                if args.format == "wav":
                    fh.write(wav_header(len(data), args.sample_rate))
                fh.write(data)
        except OSError as exc:
            raise ConfigError(f"cannot write {out / name}: {exc.strerror}", key="--out") from None
        row = {
            "file": name,
            "device": str(device),
            "label": label,
            "anomaly": anomaly or "",
            "snr_db": f"{args.snr_db:g}",
            "seconds": f"{len(pcm) / args.sample_rate:g}",
            "sample_rate": str(args.sample_rate),
        }
        details = machine.describe()
        for key in details:
            if key not in fields:
                fields.append(key)
        row.update(details)
        rows.append(row)
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    faulty = sum(1 for r in rows if r["anomaly"])
    isolated = "; isolated source, always normal" if args.model in ISOLATED_MODELS else ""
    print(f"wrote {len(rows)} clips ({faulty} faulty{isolated}) and labels.csv to {out}")
    return 0
