"""The three built-in device kinds, written on the public device API (:mod:`simulator.userdevice`).

``kind = "ai_analysis"`` and ``kind = "auth_flow"`` run these classes; ``kind = "iot_upload"``
runs a callback fast path (``simulator.run.devices.IotUpload``) that sends and records what
:class:`IotUpload` does — ``tests/simulator/test_builtin_devices.py`` runs both and compares. Each
is also a worked example of the API, and usable as ``kind = "python:simulator.builtin_devices:
IotUpload"`` with the same keys as the built-in kind.

The engine hands a built-in kind's checked ``[...device]`` table as ``options`` (every field of
its config, plus ``accounts`` for ``auth_flow``); given as a ``python:`` kind, missing keys take
the built-in kind's defaults.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from simulator.config.model import AnalyzeDevice, AuthDevice, IotUploadDevice
from simulator.userdevice import Device


def _option(options: Mapping[str, Any], defaults: Any, key: str) -> Any:
    return options[key] if key in options else getattr(defaults, key)


class IotUpload(Device):
    """Seed scenario 2: raw PCM, ``X-Device-ID`` / ``X-Sample-Rate`` / ``X-Sequence``, one
    ``chunk_bytes`` slice of the device's sound per iteration, sequences from 0."""

    audio_bytes = IotUploadDevice.chunk_bytes  # the bank's slice for a python: kind

    async def on_start(self) -> None:
        o, d = self.options, IotUploadDevice()
        self.endpoint = str(_option(o, d, "endpoint"))
        self.chunk_bytes = int(_option(o, d, "chunk_bytes"))
        self.sample_rate = str(_option(o, d, "sample_rate"))
        self.seq = 0  # devices.csv's next_sequence

    async def iteration(self) -> None:
        assert self.audio is not None
        seq = self.seq
        self.seq = seq + 1  # counted when sent, as the firmware does
        await self.client.post(
            self.endpoint,
            data=self.audio.chunk(seq, self.chunk_bytes),
            headers={
                "X-Sample-Rate": self.sample_rate,
                "X-Device-ID": self.device_id,
                "X-Sequence": str(seq),
            },
        )


def unit_hash(*parts: object) -> float:
    """A reproducible number in [0, 1) from the parts (per device and upload)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


class AiAnalysis(Device):
    """Seed scenario 1: a WAV of ``min_seconds``..``max_seconds`` (different every upload,
    reproducible from the audio seed) in multipart field ``field``, after ``extra_fields``."""

    audio_bytes = AnalyzeDevice().audio_bytes()

    async def on_start(self) -> None:
        o, d = self.options, AnalyzeDevice()
        self.endpoint = str(_option(o, d, "endpoint"))
        self.field = str(_option(o, d, "field"))
        self.filename = str(_option(o, d, "filename"))
        self.content_type = str(_option(o, d, "content_type"))
        self.min_seconds = float(_option(o, d, "min_seconds"))
        self.max_seconds = float(_option(o, d, "max_seconds"))
        self.rate = int(_option(o, d, "sample_rate"))
        self.fields = dict(_option(o, d, "extra_fields"))
        self.seq = 0

    def pcm_bytes(self, seq: int) -> int:
        assert self.audio is not None
        u = unit_hash(self.audio.seed, self.index, seq)
        seconds = self.min_seconds + (self.max_seconds - self.min_seconds) * u
        return int(seconds * self.rate) * 2

    async def iteration(self) -> None:
        assert self.audio is not None
        seq = self.seq
        self.seq = seq + 1
        wav = self.audio.wav_parts(seq, self.pcm_bytes(seq))  # header + PCM, never joined
        await self.client.post(
            self.endpoint,
            files={self.field: (self.filename, wav, self.content_type)},
            fields=self.fields,
            headers={"X-Device-ID": self.device_id},
        )


class AuthFlow(Device):
    """Seed scenario 3: log in once (its account: ``accounts[index]``), keep the cookie jar,
    verify each iteration; a 401 logs in again and verifies once more. The scenario's checks
    judge the verify replies, not the logins."""

    bytes_ok = 0  # devices.csv: an auth device uploads no audio (its logins are not counted)

    async def on_start(self) -> None:
        o, d = self.options, AuthDevice()
        self.login_endpoint = str(_option(o, d, "login_endpoint"))
        self.verify_endpoint = str(_option(o, d, "verify_endpoint"))
        self.form = _option(o, d, "body_format") == "form"
        self.user_field = str(_option(o, d, "username_field"))
        self.password_field = str(_option(o, d, "password_field"))
        self.account = o["accounts"][self.index]  # username, password (a Secret)
        self.logged_in = False
        self.seq = 0  # verifies sent (devices.csv's next_sequence)
        self.logins = 0

    async def login(self) -> bool:
        self.logins += 1
        creds = {
            self.user_field: self.account.username,
            self.password_field: self.account.password.reveal(),
        }
        if self.form:
            reply = await self.client.post(
                self.login_endpoint,
                data=urlencode(creds).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                checks=False,
            )
        else:
            reply = await self.client.post(self.login_endpoint, json=creds, checks=False)
        self.logged_in = reply.ok
        return reply.ok

    async def iteration(self) -> None:
        if not self.logged_in and not await self.login():
            return
        for attempt in range(2):
            reply = await self.client.get(self.verify_endpoint)
            self.seq += 1
            if reply.status == 401 and attempt == 0:
                self.client.clear_cookies()  # the session is gone: log in again, once
                if not await self.login():
                    return
                continue
            return
