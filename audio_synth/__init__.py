"""Deterministic machine sound as 16-bit PCM, and the shared bank the load engine slices.

Exports resolve lazily (PEP 562) so that ``scfleet --help``, which imports ``audio_synth.cli``,
does not pay for numpy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from audio_synth.wav import WAV_HEADER_BYTES, wav_header

if TYPE_CHECKING:
    from audio_synth.bank import BankError, PcmBank
    from audio_synth.machine import (
        FAULTS,
        MODELS,
        Bearing,
        Broadband,
        Fan,
        FaultTraits,
        Hum,
        Machine,
        Resonance,
        Shaft,
        Valve,
        draw_anomaly,
    )
    from audio_synth.render import (
        mix_at_snr,
        normal_clips,
        render_clip,
        render_components,
        synthesize,
        to_pcm16,
    )

_LAZY = {
    "PcmBank": "audio_synth.bank",
    "BankError": "audio_synth.bank",
    "normal_clips": "audio_synth.render",
    "render_clip": "audio_synth.render",
    "render_components": "audio_synth.render",
    "synthesize": "audio_synth.render",
    "mix_at_snr": "audio_synth.render",
    "to_pcm16": "audio_synth.render",
    "Machine": "audio_synth.machine",
    "Hum": "audio_synth.machine",
    "Shaft": "audio_synth.machine",
    "Bearing": "audio_synth.machine",
    "Resonance": "audio_synth.machine",
    "Broadband": "audio_synth.machine",
    "Fan": "audio_synth.machine",
    "Valve": "audio_synth.machine",
    "FaultTraits": "audio_synth.machine",
    "FAULTS": "audio_synth.machine",
    "MODELS": "audio_synth.machine",
    "draw_anomaly": "audio_synth.machine",
}

__all__ = [
    "FAULTS",
    "MODELS",
    "WAV_HEADER_BYTES",
    "BankError",
    "Bearing",
    "Broadband",
    "Fan",
    "FaultTraits",
    "Hum",
    "Machine",
    "PcmBank",
    "Resonance",
    "Shaft",
    "Valve",
    "draw_anomaly",
    "mix_at_snr",
    "normal_clips",
    "render_clip",
    "render_components",
    "synthesize",
    "to_pcm16",
    "wav_header",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'audio_synth' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
