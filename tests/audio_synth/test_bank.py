"""PcmBank: zero-copy, reproducible, per-device slices the load engine sends as request bodies."""

from __future__ import annotations

import io
import time
import tracemalloc
import wave

import numpy as np
import pytest
import soundfile

from audio_synth import BankError, PcmBank, wav_header
from scfleet_core.errors import EXIT_INVALID_CONFIG, ConfigError


@pytest.fixture(scope="module")
def bank() -> PcmBank:
    return PcmBank.build(3, profiles=4, seconds=2.0, max_chunk_bytes=96_000)


@pytest.fixture(scope="module")
def tiny() -> PcmBank:
    """A loop (16,000 bytes) shorter than the largest chunk, so the tail must repeat the loop."""
    return PcmBank.build(3, profiles=2, seconds=0.5, max_chunk_bytes=40_000)


def loop_of(bank: PcmBank, device: int) -> bytes:
    row = bank.storage[device % len(bank.profiles)]
    return row[: bank.loop_bytes // 2].tobytes()


def test_default_bank_builds_fast_and_small() -> None:
    started = time.process_time()
    bank = PcmBank.build(1)
    took = time.process_time() - started
    assert took < 2.0  # ~0.15–0.3 s here; generous for a shared 2-core machine
    assert len(bank.profiles) == 16
    assert bank.loop_bytes == 30 * 16000 * 2
    assert bank.nbytes == 16 * (bank.loop_bytes + 1_000_000)
    assert bank.storage.dtype == np.dtype("<i2")


def test_chunk_is_a_zero_copy_read_only_slice(bank: PcmBank) -> None:
    chunk = bank.chunk(5, 7, 32_000)
    assert isinstance(chunk, memoryview)
    assert chunk.readonly and chunk.contiguous and chunk.nbytes == 32_000
    assert np.shares_memory(np.frombuffer(chunk, dtype="<i2"), bank.storage)
    with pytest.raises(TypeError):
        chunk[0] = 1  # type: ignore[index]


def test_slicing_does_not_grow_memory(bank: PcmBank) -> None:
    bank.chunk(0, 0, 32_000)
    tracemalloc.start()
    try:
        kept = [bank.chunk(d, d * 3, 32_000) for d in range(5000)]
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 5000 slices of 32 KB would be 160 MB if copied; memoryview objects are ~200 bytes each.
    assert size < 5000 * 400
    assert len(kept) == 5000


def test_chunks_are_reproducible_and_depend_on_seed() -> None:
    a = PcmBank.build(9, profiles=2, seconds=0.5, max_chunk_bytes=8000)
    b = PcmBank.build(9, profiles=2, seconds=0.5, max_chunk_bytes=8000)
    c = PcmBank.build(10, profiles=2, seconds=0.5, max_chunk_bytes=8000)
    for device in (0, 1, 17, 123_456):
        assert bytes(a.chunk(device, 3, 8000)) == bytes(b.chunk(device, 3, 8000))
        assert bytes(a.chunk(device, 3, 8000)) != bytes(c.chunk(device, 3, 8000))
    assert [p.label for p in a.profiles] == [p.label for p in b.profiles]


def test_devices_differ_even_when_they_share_a_profile(bank: PcmBank) -> None:
    bodies = {bytes(bank.chunk(d, 0, 32_000)) for d in range(40)}
    assert len(bodies) == 40
    assert bank.label(1) == bank.label(5)  # same profile (4 profiles) …
    assert bank.offset(1) != bank.offset(5)  # … different start


def test_sequences_advance_and_wrap(bank: PcmBank, tiny: PcmBank) -> None:
    for b, nbytes in ((bank, 32_000), (bank, 96_000), (tiny, 6_000), (tiny, 40_000)):
        device = 6
        loop = loop_of(b, device)
        looped = loop * (2 + 2 * nbytes // len(loop))
        start = b.offset(device)
        for seq in range(0, 12):
            at = (start + seq * nbytes) % len(loop)
            assert bytes(b.chunk(device, seq, nbytes)) == looped[at : at + nbytes], (nbytes, seq)
    # Consecutive uploads continue the same audio.
    joined = bytes(bank.chunk(2, 0, 32_000)) + bytes(bank.chunk(2, 1, 32_000))
    assert joined == bytes(bank.chunk(2, 0, 64_000))


@pytest.mark.parametrize("nbytes", [0, -2, 31_999, 96_002])
def test_bad_chunk_sizes_are_config_errors(bank: PcmBank, nbytes: int) -> None:
    with pytest.raises(BankError, match="even") as info:
        bank.chunk(0, 0, nbytes)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert info.value.exit_code == EXIT_INVALID_CONFIG


def test_negative_device_is_refused(bank: PcmBank) -> None:
    with pytest.raises(BankError):
        bank.chunk(-1, 0, 32)
    with pytest.raises(BankError):
        bank.label(-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"profiles": 0},
        {"seconds": 0.0},
        {"max_chunk_bytes": 1001},
        {"anomaly_probability": 1.5},
        {"sample_rate": 100},
        {"snr_db": float("nan")},
    ],
)
def test_bad_build_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(BankError):
        PcmBank.build(0, **kwargs)  # type: ignore[arg-type]


def test_labels_follow_anomaly_probability() -> None:
    faulty = PcmBank.build(2, profiles=6, seconds=0.2, max_chunk_bytes=64, anomaly_probability=1.0)
    healthy = PcmBank.build(2, profiles=6, seconds=0.2, max_chunk_bytes=64, anomaly_probability=0.0)
    assert all(not faulty.label(d).endswith("/normal") for d in range(6))
    assert all(healthy.label(d).endswith("/normal") for d in range(6))
    assert faulty.label(7) == faulty.label(1)
    kinds = {faulty.label(d).split("/")[1] for d in range(6)}
    assert kinds <= {"bearing-outer", "bearing-inner", "imbalance"}


def test_wav_parses_with_wave_and_soundfile(bank: PcmBank) -> None:
    header, pcm = bank.wav(3, 2, 32_000)
    assert len(header) == 44
    body = header + bytes(pcm)
    with wave.open(io.BytesIO(body)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() == 16_000
        assert w.readframes(16_000) == bytes(pcm)
    data, rate = soundfile.read(io.BytesIO(body), dtype="int16")
    assert rate == 16000
    assert np.array_equal(data, np.frombuffer(pcm, dtype="<i2"))


def test_wav_header_fields() -> None:
    h = wav_header(320_000)
    assert h[:4] == b"RIFF" and h[8:16] == b"WAVEfmt "
    assert int.from_bytes(h[4:8], "little") == 36 + 320_000
    assert int.from_bytes(h[24:28], "little") == 16000
    assert int.from_bytes(h[28:32], "little") == 32000
    assert int.from_bytes(h[40:44], "little") == 320_000
    stereo = wav_header(400, 44100, 2, 16)
    assert int.from_bytes(stereo[32:34], "little") == 4
    with pytest.raises(ValueError):
        wav_header(3)
