"""RIFF/WAVE headers for 16-bit PCM, without numpy, so request bodies can be framed on the hot path."""

from __future__ import annotations

import struct
from functools import lru_cache

#: Size of the canonical PCM WAV header (RIFF + fmt + data chunk headers).
WAV_HEADER_BYTES = 44


@lru_cache(maxsize=256)
def wav_header(
    data_bytes: int, sample_rate: int = 16000, channels: int = 1, bits_per_sample: int = 16
) -> bytes:
    """The 44-byte header that precedes ``data_bytes`` of little-endian PCM.

    Cached because the engine asks for the same few body sizes millions of times; sending the
    header and a zero-copy PCM slice as two buffers avoids concatenating a new body per request.
    """
    if bits_per_sample % 8 or not 8 <= bits_per_sample <= 32:
        raise ValueError(f"bits_per_sample must be 8, 16, 24 or 32, got {bits_per_sample}")
    if channels < 1 or sample_rate < 1:
        raise ValueError("channels and sample_rate must be positive")
    block_align = channels * bits_per_sample // 8
    if data_bytes < 0 or data_bytes % block_align or data_bytes > 0xFFFFFFFF - 36:
        raise ValueError(
            f"data_bytes must be a non-negative multiple of {block_align} that fits RIFF, "
            f"got {data_bytes}"
        )
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits_per_sample,
        b"data",
        data_bytes,
    )
