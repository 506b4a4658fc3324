"""The shared PCM bank the load engine slices request bodies from.

Why a bank: k6 copies a file per VU, so memory grows with the fleet. Here a few machine profiles
are rendered once, each stored with a tail copy of ``max_chunk_bytes`` so any slice is contiguous,
and every request body is a read-only ``memoryview`` into that storage — no copy per request, and
memory fixed by ``profiles × (seconds + max_chunk)`` whatever the number of devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audio_synth.wav import wav_header
from scfleet_core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from audio_synth.machine import Machine

_MASK64 = (1 << 64) - 1


class BankError(ConfigError, ValueError):
    """A bad bank parameter or chunk request: a user's config error (exit 104) and a ValueError."""


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread hash for per-device offsets (no state kept)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@dataclass(frozen=True)
class BankProfile:
    """One rendered machine: who it is, whether it is faulty, and its label."""

    machine: Machine
    anomaly: str | None
    label: str


class PcmBank:
    """Profiles of 16-bit LE mono PCM, sliced per device and sequence without copying."""

    def __init__(
        self,
        seed: int,
        sample_rate: int,
        max_chunk_bytes: int,
        loop_bytes: int,
        storage: np.ndarray,
        profiles: tuple[BankProfile, ...],
    ):
        self.seed = seed
        self.sample_rate = sample_rate
        self.max_chunk_bytes = max_chunk_bytes
        self.loop_bytes = loop_bytes
        self.profiles = profiles
        self._storage = storage
        self._views = [memoryview(row).cast("B") for row in storage]
        self._count = len(profiles)
        self._seed_mix = _mix64(seed)
        self._offsets: dict[int, int] = {}

    @classmethod
    def build(
        cls,
        seed: int,
        *,
        sample_rate: int = 16000,
        profiles: int = 16,
        seconds: float = 30.0,
        max_chunk_bytes: int = 1_000_000,
        anomaly_probability: float = 0.05,
        snr_db: float = 6.0,
    ) -> PcmBank:
        """Render ``profiles`` machines of the fleet ``seed``; faults drawn per profile."""
        import numpy as np

        from audio_synth.machine import STREAM_ANOMALY, STREAM_BANK_RENDER, Machine, draw_anomaly
        from audio_synth.render import synthesize, to_pcm16

        if seed < 0:
            raise BankError(f"seed must be non-negative, got {seed}", key="seed")
        if profiles < 1:
            raise BankError(f"profiles must be at least 1, got {profiles}", key="profiles")
        if not 4000 <= sample_rate <= 192000:
            raise BankError(
                f"sample_rate must be within 4000..192000, got {sample_rate}", key="sample_rate"
            )
        if not (math.isfinite(seconds) and 0.01 <= seconds <= 3600):
            raise BankError(f"seconds must be within 0.01..3600, got {seconds}", key="seconds")
        if max_chunk_bytes < 2 or max_chunk_bytes % 2:
            raise BankError(
                f"max_chunk_bytes must be even and >= 2, got {max_chunk_bytes}",
                key="max_chunk_bytes",
            )
        if not 0.0 <= anomaly_probability <= 1.0:
            raise BankError(
                f"must be within [0, 1], got {anomaly_probability}", key="anomaly_probability"
            )
        if not math.isfinite(snr_db):
            raise BankError(f"must be finite, got {snr_db}", key="snr_db")

        n = max(16, round(seconds * sample_rate))
        tail = max_chunk_bytes // 2
        storage = np.empty((profiles, n + tail), dtype="<i2")
        made = []
        for p in range(profiles):
            machine = Machine.draw(seed, p)
            anomaly = draw_anomaly(machine, anomaly_probability, (seed, p, STREAM_ANOMALY))
            rng = np.random.default_rng([seed, p, STREAM_BANK_RENDER])
            src = synthesize(machine, n, sample_rate, rng, anomaly)
            row = storage[p]
            row[:n] = to_pcm16(src.mix(snr_db), machine.level_dbfs)
            # The rendered clip is periodic, so the tail continues it seamlessly.
            row[n:] = np.resize(row[:n], tail)
            made.append(BankProfile(machine, anomaly, src.label))
        storage.flags.writeable = False
        return cls(seed, sample_rate, max_chunk_bytes, 2 * n, storage, tuple(made))

    def _check(self, device_index: int, nbytes: int) -> None:
        if device_index < 0:
            raise BankError(f"device index must be non-negative, got {device_index}")
        if nbytes <= 0 or nbytes % 2 or nbytes > self.max_chunk_bytes:
            raise BankError(
                f"chunk size must be a positive even number of bytes <= {self.max_chunk_bytes}"
                f" (whole 16-bit samples), got {nbytes}",
                key="chunk_bytes",
            )

    def offset(self, device_index: int) -> int:
        """Where device ``device_index`` starts in its profile (even bytes, from (seed, device))."""
        off = self._offsets.get(device_index)
        if off is None:  # memoized: chunk() is on every request's path
            h = _mix64(self._seed_mix ^ (device_index & _MASK64))
            off = self._offsets[device_index] = (h % (self.loop_bytes // 2)) * 2
        return off

    def chunk(self, device_index: int, sequence: int, nbytes: int) -> memoryview:
        """Upload ``sequence`` of a device: read-only, contiguous, zero-copy, ``nbytes`` long."""
        self._check(device_index, nbytes)
        start = (self.offset(device_index) + sequence * nbytes) % self.loop_bytes
        return self._views[device_index % self._count][start : start + nbytes]

    def wav(self, device_index: int, sequence: int, pcm_bytes: int) -> tuple[bytes, memoryview]:
        """(44-byte RIFF header, PCM slice): send both buffers rather than concatenating."""
        pcm = self.chunk(device_index, sequence, pcm_bytes)
        return wav_header(pcm_bytes, self.sample_rate), pcm

    def label(self, device_index: int) -> str:
        """The machine/anomaly label of the device's profile, e.g. ``motor/normal``."""
        if device_index < 0:
            raise BankError(f"device index must be non-negative, got {device_index}")
        return self.profiles[device_index % self._count].label

    def machine(self, device_index: int) -> Machine:
        return self.profiles[device_index % self._count].machine

    @property
    def nbytes(self) -> int:
        """Memory held by the PCM storage; independent of the number of devices."""
        return int(self._storage.nbytes)

    @property
    def storage(self) -> np.ndarray:
        """The read-only (profiles, samples) int16 array every chunk points into."""
        return self._storage
