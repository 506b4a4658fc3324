"""``scfleet synth`` through the real CLI switchboard."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile

from scfleet.cli import main
from scfleet_core.errors import EXIT_INVALID_CONFIG


def read_labels(folder: Path) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_synth_writes_wav_files_and_labels(tmp_path: Path) -> None:
    out = tmp_path / "clips"
    argv = [
        "synth",
        "--out",
        str(out),
        "--count",
        "4",
        "--seconds",
        "0.5",
        "--seed",
        "7",
        "--anomaly-probability",
        "1",
        "--model",
        "bearing-outer",
        "--snr-db",
        "0",
    ]
    assert main(argv) == 0
    rows = read_labels(out)
    assert [r["file"] for r in rows] == [f"device-{i:06d}.wav" for i in range(4)]
    for row in rows:
        assert row["label"].endswith("/bearing-outer") and row["anomaly"] == "bearing-outer"
        assert row["snr_db"] == "0"
        assert float(row["bpfo_hz"]) > 0 and float(row["rpm"]) > 0
        data, rate = soundfile.read(out / row["file"], dtype="int16")
        assert rate == 16000 and data.shape == (8000,)
    first = (out / "device-000000.wav").read_bytes()
    assert main(argv) == 0
    assert (out / "device-000000.wav").read_bytes() == first  # reproducible


def test_synth_raw_and_isolated_model(tmp_path: Path) -> None:
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path),
                "--count",
                "2",
                "--seconds",
                "0.25",
                "--format",
                "raw",
                "--model",
                "valve",
                "--anomaly-probability",
                "1",
            ]
        )
        == 0
    )
    rows = read_labels(tmp_path)
    assert [r["label"] for r in rows] == ["valve/normal", "valve/normal"]
    raw = (tmp_path / rows[0]["file"]).read_bytes()
    assert len(raw) == 4000 * 2
    assert np.frombuffer(raw, dtype="<i2").any()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--seconds", "-1"),
        ("--count", "0"),
        ("--format", "flac"),
        ("--model", "turbine"),
        ("--anomaly-probability", "2"),
        ("--snr-db", "nan"),
        ("--seed", "-3"),
    ],
)
def test_bad_arguments_exit_104_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    code = main(["synth", "--out", str(tmp_path / "x"), option, value])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID_CONFIG
    assert err.count("\n") == 1 and err.startswith("scfleet: ") and option in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["synth", "--out", str(target)]) == EXIT_INVALID_CONFIG
    assert "not a folder" in capsys.readouterr().err
