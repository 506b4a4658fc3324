"""The DSP: features of known signals, the anomaly score, the normal profile and its fallback."""

from __future__ import annotations

import io
import sys
import time
import types

import numpy as np
import pytest
import soundfile as sf

from reference_server import analysis
from reference_server.analysis import (
    AudioRejected,
    analyze_bytes,
    build_profile,
    builtin_normal_clips,
    burn_cpu,
    decode_audio,
    load_normal_clips,
)

RATE = 16000


@pytest.fixture(scope="module")
def profile() -> analysis.NormalProfile:
    clips = builtin_normal_clips(0, 6, 2.0, RATE)
    return build_profile(clips, RATE, "builtin")


def _encode(x: np.ndarray, rate: int = RATE, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_sine_centroid_and_rms(freq: float, profile: analysis.NormalProfile) -> None:
    t = np.arange(2 * RATE) / RATE
    result = analyze_bytes(_encode(0.5 * np.sin(2 * np.pi * freq * t)), profile)
    assert result["spectral_centroid_hz"] == pytest.approx(freq, rel=0.03)
    assert result["rms"] == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert result["duration_s"] == pytest.approx(2.0)
    assert len(result["band_energies"]) == analysis.N_MELS
    assert result["processing_ms"] > 0


def test_other_formats_rates_and_stereo_mix(profile: analysis.NormalProfile) -> None:
    rate = 44100
    t = np.arange(rate) / rate
    left = 0.4 * np.sin(2 * np.pi * 2000 * t)
    flac = analyze_bytes(_encode(np.stack([left, left], axis=1), rate, "FLAC"), profile)
    assert flac["sample_rate"] == rate
    assert flac["spectral_centroid_hz"] == pytest.approx(2000, rel=0.03)
    assert flac["rms"] == pytest.approx(0.4 / np.sqrt(2), rel=0.01)
    # Opposite channels cancel in the mono mix: proof that it mixes rather than picks one.
    samples, _ = decode_audio(_encode(np.stack([left, -left], axis=1), rate, "WAV"))
    assert np.max(np.abs(samples)) < 1e-3


def test_normal_sound_scores_below_threshold_and_noise_above(
    profile: analysis.NormalProfile,
) -> None:
    normal = builtin_normal_clips(1234, 1, 3.0, RATE)[0]
    ok = analyze_bytes(_encode(normal.astype(np.float32) / 32768), profile)
    assert not ok["is_anomaly"], ok["anomaly_score"]
    rng = np.random.default_rng(5)
    noisy = normal.astype(np.float32) / 32768 + 0.3 * rng.standard_normal(normal.size)
    bad = analyze_bytes(_encode(np.clip(noisy, -1, 1)), profile)
    assert bad["is_anomaly"]
    assert bad["anomaly_score"] > 3 * ok["anomaly_score"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"not audio at all" * 64, "cannot decode"), (b"RIFF\x00\x00", "cannot")],
)
def test_undecodable_rejected(data: bytes, reason: str, profile: analysis.NormalProfile) -> None:
    with pytest.raises(AudioRejected, match=reason):
        analyze_bytes(data, profile)


def test_fallback_when_audio_synth_lacks_normal_clips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "audio_synth", types.ModuleType("audio_synth"))
    clips, source = load_normal_clips(3, count=2, seconds=0.5, sample_rate=RATE)
    assert source == "builtin"
    assert len(clips) == 2 and clips[0].dtype == np.int16 and clips[0].size == RATE // 2
    assert np.array_equal(clips[0], builtin_normal_clips(3, 2, 0.5, RATE)[0])  # deterministic
    assert analysis.default_profile(3).source == "builtin"


def test_uses_audio_synth_normal_clips_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []

    def normal_clips(seed: int, count: int, seconds: float, sample_rate: int) -> list[np.ndarray]:
        calls.append((seed, count, seconds, sample_rate))
        return builtin_normal_clips(seed + 100, count, seconds, sample_rate)

    fake = types.ModuleType("audio_synth")
    fake.normal_clips = normal_clips  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "audio_synth", fake)
    prof = analysis.default_profile(7)
    assert prof.source == "audio_synth"
    assert calls == [(7, analysis.PROFILE_CLIPS, analysis.PROFILE_SECONDS, RATE)]
    assert len(prof.mean) == analysis.N_MELS and min(prof.std) >= 1.0 and prof.threshold > 1.0


def test_burn_cpu_is_busy_for_its_wall_time() -> None:
    start, cpu = time.perf_counter(), time.thread_time()
    burn_cpu(50)
    took, spent = time.perf_counter() - start, time.thread_time() - cpu
    assert 0.05 <= took < 0.05 + 0.25  # the service time, whatever else the host runs
    assert spent > 0.0  # busy work, not a sleep


def test_profile_from_real_audio_synth_accepts_its_normal_sound() -> None:
    """With the real synthesizer: unseen healthy machines of the fleet are not flagged, and a
    clip drowned in broadband noise is."""
    import audio_synth

    if not hasattr(audio_synth, "normal_clips"):
        pytest.skip("audio_synth.normal_clips not available yet")
    prof = analysis.default_profile(0)
    assert prof.source == "audio_synth"
    fresh = audio_synth.normal_clips(0, analysis.PROFILE_CLIPS + 4, 2.0, RATE)
    for clip in fresh[analysis.PROFILE_CLIPS :]:  # devices the profile never saw
        result = analyze_bytes(_encode(clip.astype(np.float32) / 32768), prof)
        assert not result["is_anomaly"], result["anomaly_score"]
    rng = np.random.default_rng(9)
    loud = fresh[-1].astype(np.float32) / 32768 + 0.3 * rng.standard_normal(fresh[-1].size)
    assert analyze_bytes(_encode(np.clip(loud, -1, 1)), prof)["is_anomaly"]
