"""The audio analysis behind ``/api/lightweight-analyze``: real DSP, so the server costs what a
real one does.

A clip is decoded with soundfile (any format libsndfile reads), mixed to mono, cut into ~32 ms
Hann-windowed frames and turned into log-mel band energies. The anomaly score is how far those
frames sit from a profile of *normal* machine sound (per-band mean and std of log-mel energy),
built at startup from ``audio_synth.normal_clips`` or, while that is missing, from a small built-in
synthetic machine. :func:`analyze_bytes` is a plain top-level function of picklable arguments so
it runs unchanged in a process pool (production) or a thread pool (fast in-process tests).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

N_MELS = 32
FMIN_HZ = 50.0
FMAX_HZ = 8000.0
FRAME_S = 0.032
MAX_DURATION_S = 600.0  # a small compressed file can decode to a huge clip; refuse those
_FLOOR = 1e-12

PROFILE_CLIPS = 6
PROFILE_SECONDS = 2.0
PROFILE_SAMPLE_RATE = 16000


class AudioRejected(ValueError):
    """The upload is not usable audio; the message becomes the 400 answer's reason."""


@dataclass(frozen=True)
class NormalProfile:
    """Per-band statistics of normal sound plus the score above which a clip is anomalous."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    threshold: float
    source: str


@dataclass(frozen=True)
class Features:
    duration_s: float
    sample_rate: int
    rms: float
    spectral_centroid_hz: float
    band_energies_db: np.ndarray  # mean log-mel energy per band
    frames_db: np.ndarray  # log-mel energy per frame, shape (frames, N_MELS)


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode any libsndfile format to mono float32 in [-1, 1]."""
    if not data:
        raise AudioRejected("audio file is empty")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = int(f.samplerate)
            if f.frames > MAX_DURATION_S * rate:
                raise AudioRejected(f"audio longer than {MAX_DURATION_S:.0f} s")
            samples = f.read(dtype="float32", always_2d=True)
    except AudioRejected:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc).splitlines()[0][:200]
        raise AudioRejected(f"cannot decode audio: {reason}") from None
    if samples.shape[0] == 0:
        raise AudioRejected("audio has no samples")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def _frame_setup(sample_rate: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """FFT size, window, bin frequencies and mel filterbank for one rate (cached: rates repeat).

    Band edges are fixed in Hz, so energies of the same sound agree across sample rates; bands
    above Nyquist stay empty.
    """
    n_fft = 1 << max(6, math.ceil(math.log2(FRAME_S * sample_rate)))
    window = np.hanning(n_fft).astype(np.float32)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(FMIN_HZ)), _hz_to_mel(np.array(FMAX_HZ)), N_MELS + 2)
    )
    bank = np.zeros((N_MELS, freqs.size), dtype=np.float64)
    for m in range(N_MELS):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        bank[m] = np.clip(np.minimum(rising, falling), 0.0, None)
    return n_fft, window, freqs, bank


def extract_features(samples: np.ndarray, sample_rate: int) -> Features:
    """Log-mel frames, RMS and spectral centroid of a mono float clip."""
    x = np.asarray(samples, dtype=np.float32)
    n_fft, window, freqs, bank = _frame_setup(sample_rate)
    hop = n_fft // 2
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * window
    spectrum = np.fft.rfft(frames, axis=1)
    # Periodogram scaled to power per Hz, times bin width: band power independent of FFT size.
    power = (spectrum.real**2 + spectrum.imag**2) / (sample_rate * float(np.sum(window**2)))
    power *= sample_rate / n_fft
    band_power = power @ bank.T
    frames_db = 10.0 * np.log10(band_power + _FLOOR)
    mean_power = power.mean(axis=0)
    total = float(mean_power.sum())
    centroid = float((mean_power * freqs).sum() / total) if total > _FLOOR else 0.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return Features(
        duration_s=samples.size / sample_rate,
        sample_rate=sample_rate,
        rms=rms,
        spectral_centroid_hz=centroid,
        band_energies_db=frames_db.mean(axis=0),
        frames_db=frames_db,
    )


def anomaly_score(frames_db: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Mean over frames of the RMS z-score across bands: 1 is typical, large is unlike normal."""
    z = (frames_db - mean) / std
    return float(np.mean(np.sqrt(np.mean(z * z, axis=1))))


def build_profile(clips: list[np.ndarray], sample_rate: int, source: str) -> NormalProfile:
    """Band statistics over every frame of the normal clips; the threshold sits well above the
    worst normal clip so normal sound is not flagged."""
    if not clips:
        raise ValueError("a normal profile needs at least one clip")
    per_clip = [extract_features(_to_float(c), sample_rate).frames_db for c in clips]
    stacked = np.concatenate(per_clip, axis=0)
    mean = stacked.mean(axis=0)
    std = np.maximum(stacked.std(axis=0), 1.0)  # >= 1 dB: silent bands must not explode z
    scores = np.array([anomaly_score(f, mean, std) for f in per_clip])
    threshold = float(max(scores.mean() + 3.0 * scores.std(), 1.5 * scores.max()))
    return NormalProfile(
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        threshold=threshold,
        source=source,
    )


def _to_float(clip: np.ndarray) -> np.ndarray:
    if clip.dtype == np.int16:
        return clip.astype(np.float32) / 32768.0
    return np.asarray(clip, dtype=np.float32)


def builtin_normal_clips(
    seed: int, count: int, seconds: float, sample_rate: int
) -> list[np.ndarray]:
    """A healthy motor: 2x-mains hum with harmonics, a shaft line and fan noise, as int16.

    Only a fallback for when ``audio_synth.normal_clips`` is not available; deterministic per seed.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n, dtype=np.float64) / sample_rate
    clips = []
    for _ in range(count):
        mains = rng.choice([50.0, 60.0])
        rpm = rng.uniform(1400.0, 3000.0)
        hum = sum(
            rng.uniform(0.05, 0.15) / k * np.sin(2 * np.pi * 2 * mains * k * t + rng.uniform(0, 6))
            for k in (1, 2, 3)
        )
        shaft = rng.uniform(0.01, 0.04) * np.sin(2 * np.pi * rpm / 60.0 * t)
        white = rng.standard_normal(n)
        fan = np.convolve(white, np.ones(8) / 8, mode="same") * rng.uniform(0.02, 0.05)
        mix = hum + shaft + fan + 0.003 * rng.standard_normal(n)
        clips.append(np.clip(mix * 32767.0, -32768, 32767).astype(np.int16))
    return clips


def load_normal_clips(
    seed: int,
    count: int = PROFILE_CLIPS,
    seconds: float = PROFILE_SECONDS,
    sample_rate: int = PROFILE_SAMPLE_RATE,
) -> tuple[list[np.ndarray], str]:
    """Normal clips from ``audio_synth.normal_clips`` when it exists, else the built-in machine.

    Returns the clips and where they came from (reported by ``/health``).
    """
    try:
        import audio_synth
    except ImportError:
        audio_synth = None  # type: ignore[assignment]
    make = getattr(audio_synth, "normal_clips", None)
    if make is None:
        log.info("audio_synth.normal_clips unavailable; using the built-in normal profile")
        return builtin_normal_clips(seed, count, seconds, sample_rate), "builtin"
    clips = [np.asarray(c) for c in make(seed, count, seconds, sample_rate)]
    return clips, "audio_synth"


def default_profile(seed: int = 0) -> NormalProfile:
    clips, source = load_normal_clips(seed)
    return build_profile(clips, PROFILE_SAMPLE_RATE, source)


def burn_cpu(ms: float) -> None:
    """Keep the CPU busy for ``ms`` of wall time, emulating a heavier model than ours.

    Timed by the wall clock, not this thread's CPU time, so the service time (and the server's
    capacity) is the same on a host shared with other work: there the worker gets less of a
    core but is still runnable the whole time, which is what a CPU-bound server looks like.
    """
    if ms <= 0:
        return
    end = time.perf_counter() + ms / 1000.0
    digest = b"signalcraft"
    while time.perf_counter() < end:
        for _ in range(200):
            digest = hashlib.sha256(digest).digest()


def analyze_bytes(
    data: bytes, profile: NormalProfile, extra_cost_ms: float = 0.0
) -> dict[str, Any]:
    """Decode, analyse and score one uploaded file; the JSON body of a 200 answer.

    Raises :class:`AudioRejected` for anything that is not decodable audio.
    """
    started = time.perf_counter()
    samples, rate = decode_audio(data)
    feats = extract_features(samples, rate)
    score = anomaly_score(feats.frames_db, np.asarray(profile.mean), np.asarray(profile.std))
    burn_cpu(extra_cost_ms)
    return {
        "status": "ok",
        "duration_s": round(feats.duration_s, 4),
        "sample_rate": rate,
        "rms": round(feats.rms, 6),
        "rms_dbfs": round(20.0 * math.log10(max(feats.rms, 1e-10)), 2),
        "spectral_centroid_hz": round(feats.spectral_centroid_hz, 2),
        "band_energies": [round(float(v), 2) for v in feats.band_energies_db],
        "anomaly_score": round(score, 4),
        "anomaly_threshold": round(profile.threshold, 4),
        "is_anomaly": bool(score > profile.threshold),
        "processing_ms": round((time.perf_counter() - started) * 1000.0, 2),
    }


def worker_init(server_pid: int | None = None) -> None:
    """Pool workers ignore Ctrl-C (the parent owns shutdown, so no tracebacks from children) and
    die with the server, also when it is killed with SIGKILL."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if server_pid is not None:
        from reference_server.lifeline import die_with_parent

        die_with_parent(server_pid, signal.SIGKILL)


def worker_ping() -> int:
    """Round trip used at startup so ``READY`` means the pool's workers are up."""
    import os

    return os.getpid()
