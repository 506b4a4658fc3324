"""A sensor that listens all the time but uploads only when something sounds wrong.

Each iteration it reads one second of its machine's sound (the run's audio bank, as the built-in
kinds send), scores it against its own running baseline (how far the chunk's loudness is from the
mean of the last chunks, in standard deviations) and keeps the last few chunks. Only when the
score crosses ``threshold`` does it upload the batch it kept — one POST with all of them — so the
server sees bursts from the devices whose machines misbehave, not a steady stream from all.
Used by ``configs/anomaly_sensor.toml``; the API is ``simulator.userdevice``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from simulator.userdevice import Counter, Device, Gauge, Rate, Trend


class AnomalySensor(Device):
    audio_bytes = 32000  # 1 s of 16-bit PCM at 16 kHz per listen

    score = Trend("anomaly_score")  # the z-score (a float)
    batches = Counter("anomaly_batches")
    triggered = Rate("anomaly_triggered")
    baseline = Gauge("anomaly_baseline_rms")

    async def on_start(self) -> None:
        self.threshold = float(self.options.get("threshold", 2.5))
        self.batch = int(self.options.get("batch", 3))
        self.endpoint = str(self.options.get("endpoint", "/api/esp32/audio/upload"))
        self.heard: deque[float] = deque(maxlen=int(self.options.get("window", 10)))
        self.kept: deque[bytes] = deque(maxlen=self.batch)
        self.listens = 0
        self.sequence = 0

    async def iteration(self) -> None:
        assert self.audio is not None
        pcm = self.audio.chunk(self.listens)
        self.listens += 1
        rms = float(np.sqrt(np.mean(np.frombuffer(pcm, dtype="<i2").astype(np.float64) ** 2)))
        self.kept.append(bytes(pcm))
        z = 0.0
        if len(self.heard) >= 3:
            mean, std = float(np.mean(self.heard)), float(np.std(self.heard)) or 1.0
            z = abs(rms - mean) / std
            self.score.add(z)
            self.baseline.add(mean)
        self.heard.append(rms)
        crossed = z > self.threshold and len(self.kept) == self.batch
        self.triggered.add(crossed)
        if not crossed:
            return
        res = await self.client.post(
            self.endpoint,
            data=b"".join(self.kept),
            headers={
                "X-Device-ID": self.device_id,
                "X-Sample-Rate": str(self.audio.sample_rate),
                "X-Sequence": str(self.sequence),
            },
        )
        self.sequence += 1
        self.kept.clear()
        if self.check("batch accepted", res.status == 200):
            self.batches.add(1)
