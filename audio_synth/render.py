"""Rendering a machine to PCM: stationary sound in the frequency domain, impacts in the time domain.

Why this shape: the load engine needs minutes of audio per second of CPU, so everything stationary
(hum, shaft tones, fan and machine noise, factory background) is written straight into one rfft
spectrum and turned into samples by a single inverse FFT. Tones sit on exact bins and noise is a
random-phase spectrum with the exact target magnitude, so a rendered clip is periodic — the bank can
loop it without a click — and the level of each source is known exactly by Parseval, which makes
mixing at an SNR exact without a second pass. Transients (bearing impacts, valve clicks) are placed
in the time domain as one vectorized scatter of a ringing resonance template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from audio_synth.machine import (
    STREAM_NORMAL_CLIP,
    Machine,
    Resonance,
)

F32 = NDArray[np.float32]
C64 = NDArray[np.complex64]
I16 = NDArray[np.int16]

#: Below this, "noise" is rolled off (second order): microphones and rooms do not pass DC.
LOW_CUT_HZ = 20.0
#: Resonances are kept below this fraction of the sample rate so they are not aliased.
MAX_RESONANCE_FRACTION = 0.42
#: Phases come from a 256-step table indexed by random bytes: far below audibility, ~10× faster
#: than drawing normals or evaluating sin/cos.
_PHASE_STEPS = 256
_PHASOR = np.exp(2j * np.pi * np.arange(_PHASE_STEPS) / _PHASE_STEPS).astype(np.complex64)
_FULL_SCALE = 32767.0
_PEAK_LIMIT = 32000.0


@dataclass(frozen=True)
class _Grid:
    """Frequency grids for one clip length; cached because the bank renders many equal clips.

    Noise shapes are smooth, so they are computed on a coarse grid (``block`` bins, ≤ 2 Hz apart)
    and repeated: an order of magnitude less arithmetic for an inaudible staircase. ``mask`` (full
    resolution) applies the low cut and zeroes DC and Nyquist, so Parseval's sum is ``2·Σ|X|²``.
    """

    bins: int
    block: int
    mask: F32
    coarse_f: F32
    coarse_logf: F32

    def expand(self, coarse: F32) -> F32:
        return np.repeat(coarse, self.block)[: self.bins] * self.mask


@lru_cache(maxsize=8)
def _grid(n: int, sample_rate: int) -> _Grid:
    nb = n // 2 + 1
    df = sample_rate / n
    block = max(1, min(16, int(2.0 / df)))
    f = np.arange(nb, dtype=np.float32) * np.float32(df)
    mask = np.minimum(np.float32(1.0), (f / np.float32(LOW_CUT_HZ)) ** 2).astype(np.float32)
    mask[0] = 0.0
    if n % 2 == 0:
        mask[-1] = 0.0
    coarse_f = (
        np.arange(-(-nb // block), dtype=np.float32) * block + (block - 1) / 2
    ) * np.float32(df)
    coarse_logf = np.log(np.maximum(coarse_f, np.float32(LOW_CUT_HZ)))
    for arr in (mask, coarse_f, coarse_logf):
        arr.flags.writeable = False
    return _Grid(nb, block, mask, coarse_f, coarse_logf)


def _power(spectrum: C64, n: int) -> float:
    """Mean square of ``irfft(spectrum, n)``, by Parseval, without leaving the frequency domain."""
    total = 2.0 * float(np.vdot(spectrum, spectrum).real) - float(abs(spectrum[0]) ** 2)
    if n % 2 == 0:
        total -= float(abs(spectrum[-1]) ** 2)
    return total / (n * n)


def _phasors(rng: np.random.Generator, count: int) -> C64:
    """Unit complex numbers with uniform random phase (a random-phase noise spectrum)."""
    out: C64 = _PHASOR[np.frombuffer(rng.bytes(count), dtype=np.uint8)]
    return out


def _scaled(shape: F32, rms: float, n: int, block: int) -> F32:
    """Coarse ``shape`` scaled so that its random-phase signal has (about) the given rms."""
    energy = float(np.dot(shape, shape)) * block
    if energy <= 0.0:
        return np.zeros_like(shape)
    return shape * np.float32(rms * n / math.sqrt(2.0 * energy))


def _colour(logf: F32, colour: float) -> F32:
    """Magnitude for a power spectrum ∝ f^-colour (0 white, 1 pink, 2 brown)."""
    out: F32 = np.exp(logf * np.float32(-0.5 * colour))
    return out


def _resonance_gain(freqs: F32, res: Resonance, sample_rate: int) -> F32:
    """|H| of a band-pass mode: 1 at the resonance, bandwidth ≈ 2ζ·f₀."""
    f0 = min(res.hz, MAX_RESONANCE_FRACTION * sample_rate)
    r = freqs * np.float32(1.0 / f0)
    two_zr = np.float32(2.0 * res.damping) * r
    detune = np.float32(1.0) - r * r
    gain: F32 = two_zr / np.sqrt(detune * detune + two_zr * two_zr)
    return gain


def _add_tone(spectrum: C64, hz: float, rms: float, phase: float, n: int, sample_rate: int) -> None:
    """A sinusoid on the nearest bin (≤ sample_rate/2n away), so the clip loops seamlessly."""
    k = round(hz * n / sample_rate)
    if 0 < k < (n + 1) // 2 and rms > 0.0:
        spectrum[k] += np.complex64(
            rms * math.sqrt(2.0) * n / 2.0 * complex(math.cos(phase), math.sin(phase))
        )


def _ring(
    positions: NDArray[np.float64],
    amplitudes: NDArray[np.float64],
    res: Resonance,
    n: int,
    sample_rate: int,
) -> F32:
    """Impacts at ``positions`` (samples), each ringing a decaying resonance; wraps around ``n``.

    One template, scattered with a single ``bincount``: overlapping rings add, and the cost is
    (impacts × template length), not a Python loop.
    """
    f0 = min(res.hz, MAX_RESONANCE_FRACTION * sample_rate)
    omega = 2.0 * math.pi * f0
    tau = 1.0 / (res.damping * omega)
    length = max(2, min(n, math.ceil(5.0 * tau * sample_rate)))
    t = np.arange(length, dtype=np.float64) / sample_rate
    template = np.exp(-t / tau) * np.sin(omega * math.sqrt(1.0 - res.damping**2) * t)
    starts = np.rint(positions).astype(np.int64) % n
    index = starts[:, None] + np.arange(length, dtype=np.int64)[None, :]
    index[index >= n] -= n
    weights = amplitudes[:, None] * template[None, :]
    return np.bincount(index.ravel(), weights=weights.ravel(), minlength=n).astype(np.float32)


def _rms(x: F32) -> float:
    return math.sqrt(float(np.dot(x, x)) / len(x)) if len(x) else 0.0


@dataclass(frozen=True)
class Sources:
    """A clip before mixing: the machine's stationary spectrum, its transients, the background."""

    n: int
    sample_rate: int
    spectrum: C64
    transients: F32 | None
    background: C64  # unit rms
    label: str

    def machine_signal(self) -> F32:
        x = np.fft.irfft(self.spectrum, self.n).astype(np.float32, copy=False)
        return x + self.transients if self.transients is not None else x

    def background_signal(self) -> F32:
        return np.fft.irfft(self.background, self.n).astype(np.float32, copy=False)

    def mix(self, snr_db: float) -> F32:
        """Machine plus background scaled so 20·log10(rms_machine / rms_noise) = ``snr_db``."""
        if self.transients is None:
            gain = _noise_gain(
                _power(self.spectrum, self.n), _power(self.background, self.n), snr_db
            )
            mixed = self.spectrum + np.complex64(gain) * self.background
            return np.fft.irfft(mixed, self.n).astype(np.float32, copy=False)
        signal = self.machine_signal()
        noise = self.background_signal()
        gain = _noise_gain(
            float(np.dot(signal, signal)) / self.n, _power(self.background, self.n), snr_db
        )
        signal += np.float32(gain) * noise
        return signal


def _noise_gain(signal_power: float, noise_power: float, snr_db: float) -> float:
    if noise_power <= 0.0:
        return 0.0
    return math.sqrt(signal_power / noise_power) * math.pow(10.0, -snr_db / 20.0)


def mix_at_snr(signal: F32, noise: F32, snr_db: float) -> F32:
    """Time-domain mix of any two signals at an SNR (MIMII mixes at +6, 0 and −6 dB)."""
    if signal.shape != noise.shape:
        raise ValueError("signal and noise must have the same shape")
    gain = _noise_gain(float(np.dot(signal, signal)), float(np.dot(noise, noise)), snr_db)
    return (signal + np.float32(gain) * noise).astype(np.float32, copy=False)


def synthesize(
    machine: Machine, n: int, sample_rate: int, rng: np.random.Generator, anomaly: str | None = None
) -> Sources:
    """Build every source of ``machine`` for ``n`` samples; ``anomaly`` switches one fault on."""
    if anomaly is not None and anomaly not in machine.anomalies:
        raise ValueError(
            f"{machine.kind} machine cannot have anomaly {anomaly!r}; "
            f"possible: {', '.join(machine.anomalies) or 'none'}"
        )
    if n < 16:
        raise ValueError(f"a clip needs at least 16 samples, got {n}")
    grid = _grid(n, sample_rate)
    nb, block = grid.bins, grid.block
    duration = n / sample_rate
    # Random draws come first and in a fixed order, so switching a fault on changes nothing else.
    machine_phase = _phasors(rng, nb)
    background_phase = _phasors(rng, nb)
    tone_phase = rng.uniform(0.0, 2.0 * math.pi, 16)

    power_shape: F32 | None = None
    if machine.noise is not None:
        base = _scaled(_colour(grid.coarse_logf, machine.noise.colour), machine.noise.rms, n, block)
        # A healthy bearing still rolls: broadband noise that excites the structural resonance.
        gain = _resonance_gain(grid.coarse_f, machine.resonance, sample_rate)
        ring = _scaled(gain, 0.35 * machine.noise.rms, n, block)
        power_shape = base * base + ring * ring
    if machine.fan is not None:
        fan = machine.fan
        z = (grid.coarse_logf - np.float32(math.log(fan.centre_hz))) * np.float32(
            2.0 / (fan.width_octaves * math.log(2.0))
        )
        bump = _scaled(np.exp(np.float32(-0.5) * z * z), fan.rms, n, block)
        power_shape = bump * bump if power_shape is None else power_shape + bump * bump
    if power_shape is None:
        spectrum = np.zeros(nb, dtype=np.complex64)
    else:
        spectrum = grid.expand(np.sqrt(power_shape)) * machine_phase

    if machine.hum is not None:
        hum = machine.hum
        norm = math.sqrt(sum(a * a for a in hum.harmonics))
        for h, rel in enumerate(hum.harmonics):
            _add_tone(
                spectrum,
                (h + 1) * hum.fundamental_hz,
                hum.rms * rel / norm,
                float(tone_phase[h]),
                n,
                sample_rate,
            )
    if machine.shaft is not None:
        shaft = machine.shaft
        one_x = shaft.rms_1x * (machine.fault.imbalance_gain if anomaly == "imbalance" else 1.0)
        _add_tone(spectrum, shaft.hz, one_x, float(tone_phase[8]), n, sample_rate)
        _add_tone(
            spectrum,
            2 * shaft.hz,
            shaft.rms_1x * shaft.rel_2x,
            float(tone_phase[9]),
            n,
            sample_rate,
        )
        _add_tone(
            spectrum,
            3 * shaft.hz,
            shaft.rms_1x * shaft.rel_3x,
            float(tone_phase[10]),
            n,
            sample_rate,
        )
        if machine.fan is not None:
            blade = machine.fan.blades * shaft.hz
            _add_tone(spectrum, blade, machine.fan.tone_rms, float(tone_phase[11]), n, sample_rate)
            _add_tone(
                spectrum,
                2 * blade,
                0.4 * machine.fan.tone_rms,
                float(tone_phase[12]),
                n,
                sample_rate,
            )

    transients: F32 | None = None
    if machine.valve is not None:
        valve = machine.valve
        count = math.ceil(duration / valve.mean_interval_s * 2.0) + 4
        gaps = valve.mean_interval_s * rng.lognormal(-0.08, 0.4, count)
        times = np.cumsum(gaps) - gaps[0] + rng.uniform(0.0, valve.mean_interval_s)
        times = times[times < duration]
        if not len(times):  # a clip shorter than the valve's rhythm still gets its click
            times = rng.uniform(0.0, duration, 1)
        if len(times):
            clicks = _ring(
                times * sample_rate,
                rng.uniform(0.6, 1.4, len(times)),
                valve.resonance,
                n,
                sample_rate,
            )
            rest = math.sqrt(_power(spectrum, n)) or 1.0  # alone, the clicks set their own level
            peak = max(float(clicks.max()), -float(clicks.min()), 1e-12)
            clicks *= np.float32(valve.peak * rest / peak)
            transients = clicks

    if anomaly in ("bearing-outer", "bearing-inner"):
        assert machine.bearing is not None and machine.shaft is not None
        impacts = _bearing_impacts(machine, anomaly, n, sample_rate, rng)
        healthy = _power(spectrum, n) + (
            float(np.dot(transients, transients)) / n if transients is not None else 0.0
        )
        impacts *= np.float32(
            machine.fault.severity * math.sqrt(healthy) / max(_rms(impacts), 1e-12)
        )
        transients = impacts if transients is None else transients + impacts

    colour = _scaled(_colour(grid.coarse_logf, machine.background_colour), 1.0, n, block)
    background = grid.expand(colour) * background_phase
    return Sources(n, sample_rate, spectrum, transients, background, machine.label(anomaly))


def _bearing_impacts(
    machine: Machine, anomaly: str, n: int, sample_rate: int, rng: np.random.Generator
) -> F32:
    """Impacts at the fault period with slip jitter; inner race modulated at shaft rate.

    The interval between impacts varies by ``jitter`` (rolling elements slip), and the intervals are
    rescaled to fill the clip exactly so the clip still loops; the mean rate is then within
    sample_rate/2n of the kinematic frequency. An inner-race defect turns with the shaft through the
    load zone, so its impact strength rises and falls once per revolution (sidebands at ±1× rpm).
    """
    assert machine.bearing is not None and machine.shaft is not None
    duration = n / sample_rate
    shaft_hz = machine.shaft.hz
    outer = anomaly == "bearing-outer"
    fault_hz = machine.bearing.bpfo(shaft_hz) if outer else machine.bearing.bpfi(shaft_hz)
    count = max(1, round(fault_hz * duration))
    gaps = 1.0 + machine.fault.jitter * rng.standard_normal(count)
    np.clip(gaps, 0.5, 1.5, out=gaps)
    gaps *= n / gaps.sum()
    positions = np.cumsum(gaps) - gaps[0] + rng.uniform(0.0, n / count)
    amplitudes = 1.0 + 0.1 * rng.standard_normal(count)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    if not outer:
        turns = max(1, round(shaft_hz * duration))  # on-bin shaft rate, so the clip loops
        depth = machine.fault.am_depth
        amplitudes *= 1.0 + depth * np.cos(2.0 * math.pi * turns * positions / n + phase)
    return _ring(positions, amplitudes, machine.resonance, n, sample_rate)


def to_pcm16(x: F32, level_dbfs: float) -> I16:
    """Scale to an rms of ``level_dbfs`` (lowered if a peak would clip) as 16-bit little-endian."""
    rms = _rms(x)
    peak = max(float(x.max()), -float(x.min())) if len(x) else 0.0
    if rms <= 0.0 or peak <= 0.0:
        return np.zeros(len(x), dtype="<i2")
    gain = min(_FULL_SCALE * 10.0 ** (level_dbfs / 20.0) / rms, _PEAK_LIMIT / peak)
    y = x * np.float32(gain)
    np.rint(y, out=y)
    return y.astype("<i2")


def _samples(seconds: float, sample_rate: int) -> int:
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be positive, got {seconds}")
    if not 4000 <= sample_rate <= 192000:
        raise ValueError(f"sample_rate must be within 4000..192000, got {sample_rate}")
    return max(16, round(seconds * sample_rate))


def render_components(
    machine: Machine,
    seconds: float,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    anomaly: str | None = None,
    snr_db: float = 6.0,
) -> tuple[F32, F32, str]:
    """(machine signal, background scaled to the SNR, label) as float32 — for checking a mix.

    Consumes ``rng`` exactly as :func:`render_clip` does, so with equal generators
    ``to_pcm16(signal + noise)`` is the clip.
    """
    src = synthesize(machine, _samples(seconds, sample_rate), sample_rate, rng, anomaly)
    signal = src.machine_signal()
    noise = src.background_signal()
    gain = _noise_gain(float(np.dot(signal, signal)), float(np.dot(noise, noise)), snr_db)
    return signal, (noise * np.float32(gain)).astype(np.float32, copy=False), src.label


def render_clip(
    machine: Machine,
    seconds: float,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    anomaly: str | None = None,
    snr_db: float = 6.0,
) -> tuple[I16, str]:
    """One clip as 16-bit PCM samples and its label, e.g. ``fan/bearing-inner``."""
    src = synthesize(machine, _samples(seconds, sample_rate), sample_rate, rng, anomaly)
    return to_pcm16(src.mix(snr_db), machine.level_dbfs), src.label


def normal_clips(seed: int, count: int, seconds: float, sample_rate: int = 16000) -> list[I16]:
    """``count`` clips of healthy machines (the same fleet ``PcmBank.build(seed)`` draws from).

    A reference analyser builds its profile of "normal" from these; the noise is a fresh draw, so
    they are never byte copies of what devices upload.
    """
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    clips = []
    for i in range(count):
        machine = Machine.draw(seed, i)
        rng = np.random.default_rng([seed, i, STREAM_NORMAL_CLIP])
        clips.append(render_clip(machine, seconds, sample_rate, rng)[0])
    return clips
