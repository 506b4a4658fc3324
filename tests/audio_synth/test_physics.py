"""The synthesizer's physics: fault frequencies, tones, SNR and determinism, measured on the output."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from audio_synth import (
    Bearing,
    Machine,
    mix_at_snr,
    normal_clips,
    render_clip,
    render_components,
    to_pcm16,
)

SR = 16000


def envelope_spectrum(
    x: np.ndarray, sr: int, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Band-pass by FFT masking, Hilbert envelope (one-sided spectrum), then its magnitude spectrum."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    spectrum = np.fft.fft(x)
    freqs = np.fft.fftfreq(n, 1.0 / sr)
    analytic = np.where((freqs >= lo) & (freqs <= hi), 2.0, 0.0)
    envelope = np.abs(np.fft.ifft(spectrum * analytic))
    envelope -= envelope.mean()
    return np.fft.rfftfreq(n, 1.0 / sr), np.abs(np.fft.rfft(envelope))


def amplitude_spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    return np.fft.rfftfreq(len(x), 1.0 / sr), np.abs(np.fft.rfft(x * np.hanning(len(x))))


def prominence(
    freqs: np.ndarray,
    mag: np.ndarray,
    target: float,
    tol: float = 0.6,
    guard: float = 2.0,
    span: float = 15.0,
) -> float:
    """Peak within ``tol`` of ``target`` over the median of the neighbouring bins."""
    offset = np.abs(freqs - target)
    peak = mag[offset <= tol].max()
    around = (offset > guard) & (offset <= span)
    return float(peak / np.median(mag[around]))


def resonance_band(machine: Machine) -> tuple[float, float]:
    res = machine.resonance
    half = max(500.0, 4.0 * res.damping * res.hz)
    return res.hz - half, res.hz + half


def test_bearing_kinematics_match_the_textbook_example() -> None:
    b = Bearing(balls=8, d_over_D=0.2, contact_deg=0.0)
    fr = 1800 / 60
    assert b.bpfo(fr) == pytest.approx(96.0)
    assert b.bpfi(fr) == pytest.approx(144.0)
    assert b.ftf(fr) == pytest.approx(12.0)
    assert b.bsf(fr) == pytest.approx(72.0)
    tilted = Bearing(balls=8, d_over_D=0.2, contact_deg=30.0)
    k = 0.2 * math.cos(math.radians(30))
    assert tilted.bpfo(fr) == pytest.approx(4 * fr * (1 - k))
    assert tilted.bpfi(fr) + tilted.bpfo(fr) == pytest.approx(8 * fr)  # n·fr, a kinematic identity


@pytest.mark.parametrize(("device", "snr_db"), [(0, 6.0), (1, 0.0), (2, -6.0)])
def test_outer_race_fault_shows_bpfo_in_envelope_spectrum(device: int, snr_db: float) -> None:
    machine = Machine.draw(11, device)
    assert machine.shaft is not None and machine.bearing is not None
    bpfo = machine.bearing.bpfo(machine.shaft.hz)
    bpfi = machine.bearing.bpfi(machine.shaft.hz)
    lo, hi = resonance_band(machine)

    faulty, label = render_clip(
        machine, 4.0, SR, np.random.default_rng(1), anomaly="bearing-outer", snr_db=snr_db
    )
    assert label.endswith("/bearing-outer")
    freqs, env = envelope_spectrum(faulty, SR, lo, hi)
    assert prominence(freqs, env, bpfo) > 6.0
    assert prominence(freqs, env, bpfo) > 3.0 * prominence(freqs, env, bpfi)
    # The strongest envelope line between 20 Hz and 1.2·BPFO is the fault (or the shaft, never other).
    band = (freqs > 20.0) & (freqs < 1.2 * bpfo)
    strongest = freqs[band][np.argmax(env[band])]
    assert abs(strongest - bpfo) < 0.6

    healthy, _ = render_clip(machine, 4.0, SR, np.random.default_rng(1), snr_db=snr_db)
    freqs, env = envelope_spectrum(healthy, SR, lo, hi)
    assert prominence(freqs, env, bpfo) < 4.0  # the check above can fail: no fault, no peak


def test_inner_race_fault_shows_bpfi_with_shaft_sidebands() -> None:
    machine = Machine.draw(11, 4)
    assert machine.shaft is not None and machine.bearing is not None
    fr = machine.shaft.hz
    bpfi = machine.bearing.bpfi(fr)
    x, label = render_clip(machine, 4.0, SR, np.random.default_rng(2), anomaly="bearing-inner")
    assert label.endswith("/bearing-inner")
    freqs, env = envelope_spectrum(x, SR, *resonance_band(machine))
    span = min(15.0, fr / 2)
    assert prominence(freqs, env, bpfi, span=span) > 6.0
    assert prominence(freqs, env, bpfi - fr, span=span) > 3.0
    assert prominence(freqs, env, bpfi + fr, span=span) > 3.0
    assert prominence(freqs, env, machine.bearing.bpfo(fr), span=span) < 4.0


def test_imbalance_raises_the_one_times_rpm_line() -> None:
    machine = Machine.draw(5, 3)
    assert machine.shaft is not None
    fr = machine.shaft.hz
    healthy, _ = render_clip(machine, 4.0, SR, np.random.default_rng(3), snr_db=20.0)
    faulty, _ = render_clip(
        machine, 4.0, SR, np.random.default_rng(3), anomaly="imbalance", snr_db=20.0
    )
    freqs, a = amplitude_spectrum(healthy, SR)
    _, b = amplitude_spectrum(faulty, SR)
    at = np.abs(freqs - fr) <= 0.5
    # Levels are normalised per clip, so compare the 1× line to the hum line in each clip.
    assert machine.hum is not None
    hum = np.abs(freqs - machine.hum.fundamental_hz) <= 0.5
    ratio_healthy = a[at].max() / a[hum].max()
    ratio_faulty = b[at].max() / b[hum].max()
    assert ratio_faulty > 3.0 * ratio_healthy
    assert prominence(freqs, b, fr, tol=0.5, guard=2.0, span=min(10.0, fr / 2)) > 20.0


@pytest.mark.parametrize("line_hz", [50.0, 60.0])
def test_hum_is_at_twice_the_line_frequency(line_hz: float) -> None:
    device = next(d for d in range(50) if Machine.draw(4, d, "hum").hum.line_hz == line_hz)  # type: ignore[union-attr]
    machine = Machine.draw(4, device, "hum")
    x, label = render_clip(machine, 2.0, SR, np.random.default_rng(0), snr_db=10.0)
    assert label == "hum/normal"
    freqs, mag = amplitude_spectrum(x, SR)
    band = (freqs > 30.0) & (freqs < 2000.0)
    assert freqs[band][np.argmax(mag[band])] == pytest.approx(2 * line_hz, abs=0.6)
    # Harmonics of 2× line are present; the line frequency itself is not.
    assert prominence(freqs, mag, 4 * line_hz, span=20.0) > 20.0
    assert prominence(freqs, mag, line_hz, span=20.0) < 3.0


@pytest.mark.parametrize("snr_db", [6.0, 0.0, -6.0])
@pytest.mark.parametrize("anomaly", [None, "bearing-outer"])
def test_mix_has_the_requested_snr(snr_db: float, anomaly: str | None) -> None:
    machine = Machine.draw(2, 3)
    signal, noise, _ = render_components(
        machine, 2.0, SR, np.random.default_rng(9), anomaly=anomaly, snr_db=snr_db
    )
    measured = 20 * math.log10(np.sqrt(np.mean(signal**2)) / np.sqrt(np.mean(noise**2)))
    assert measured == pytest.approx(snr_db, abs=0.1)

    # The int16 clip is that very mix (render_clip consumes the generator the same way).
    clip, _ = render_clip(
        machine, 2.0, SR, np.random.default_rng(9), anomaly=anomaly, snr_db=snr_db
    )
    mix = (signal + noise).astype(np.float64)
    gain = float(np.dot(clip, mix) / np.dot(mix, mix))
    residual = clip - gain * signal
    measured_clip = 20 * math.log10(np.std(gain * signal) / np.std(residual))
    assert measured_clip == pytest.approx(snr_db, abs=0.1)
    assert np.max(np.abs(clip - gain * mix)) <= 1.0  # only rounding separates them


def test_mix_at_snr_on_arbitrary_signals() -> None:
    rng = np.random.default_rng(0)
    s = np.sin(np.arange(8000, dtype=np.float32) * 0.3).astype(np.float32)
    n = rng.standard_normal(8000).astype(np.float32) * 5
    for target in (6.0, 0.0, -6.0):
        mixed = mix_at_snr(s, n, target)
        noise = mixed - s
        assert 20 * math.log10(np.std(s) / np.std(noise)) == pytest.approx(target, abs=0.1)


def test_same_seed_same_bytes_and_different_seed_different_bytes() -> None:
    def clip(seed: int) -> bytes:
        machine = Machine.draw(seed, 7)
        pcm, _ = render_clip(
            machine, 1.0, SR, np.random.default_rng([seed, 7]), anomaly="bearing-inner"
        )
        return pcm.astype("<i2").tobytes()

    assert clip(1) == clip(1)
    assert clip(1) != clip(2)
    assert Machine.draw(3, 4) == Machine.draw(3, 4)
    assert Machine.draw(3, 4) != Machine.draw(3, 5)


def test_devices_get_distinct_machines() -> None:
    machines = [Machine.draw(0, d) for d in range(20)]
    rpms = {round(m.shaft.rpm, 3) for m in machines if m.shaft}
    resonances = {round(m.resonance.hz) for m in machines}
    assert len(rpms) == 20 and len(resonances) == 20
    assert {m.kind for m in machines} == {"motor", "fan", "pump"}


def test_normal_clips_are_normal_reproducible_and_shaped() -> None:
    clips = normal_clips(5, 3, 0.5)
    again = normal_clips(5, 3, 0.5)
    assert len(clips) == 3
    for a, b in zip(clips, again, strict=True):
        assert a.dtype == np.int16 and len(a) == 8000
        assert np.array_equal(a, b)
        assert 100 < np.std(a) < 16000
    assert not np.array_equal(clips[0], clips[1])


def test_a_fault_the_machine_cannot_have_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot have"):
        render_clip(
            Machine.draw(0, 0, "hum"), 0.5, SR, np.random.default_rng(0), anomaly="imbalance"
        )
    with pytest.raises(ValueError):
        Machine.draw(0, 0, "turbine")


def test_level_and_clipping_guard() -> None:
    machine = replace(Machine.draw(0, 1), level_dbfs=-20.0)
    x, _ = render_clip(machine, 1.0, SR, np.random.default_rng(0))
    rms_dbfs = 20 * math.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) / 32767)
    assert rms_dbfs <= -19.9
    assert np.abs(x.astype(np.int32)).max() <= 32000
    silent = to_pcm16(np.zeros(100, dtype=np.float32), -20.0)
    assert not silent.any()


def test_short_clip_loops_without_a_jump() -> None:
    """Tones on bins and wrapped impacts make the clip periodic, so the bank loops it cleanly."""
    machine = Machine.draw(1, 2)
    x, _ = render_clip(machine, 1.0, SR, np.random.default_rng(0), snr_db=30.0)
    x = x.astype(np.float64)
    typical = np.median(np.abs(np.diff(x)))
    assert abs(x[0] - x[-1]) < 20 * typical + 50
