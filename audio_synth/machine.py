"""What a machine is made of: frozen parameter sets for each sound source, drawn per device.

Every device owns one :class:`Machine` drawn from ``(seed, device_index)``, so a fleet sounds like a
factory of similar but distinct machines (rpm, resonance, noise colour, levels) and any device's
sound can be regenerated on its own. Parameters are kept physical (rpm, ball count, contact angle,
line frequency, damping) so the labels a person reads match what an analyst would compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

#: Faults a full machine can develop; a clip or device is either normal or one of these.
FAULTS = ("bearing-outer", "bearing-inner", "imbalance")
#: What ``model`` may ask for: a full machine (``mixed``), a full machine whose faults are of one
#: kind, or one source alone (always normal) so a person can hear it in isolation.
MODELS = ("mixed", *FAULTS, "hum", "fan", "valve")
ISOLATED_MODELS = ("hum", "fan", "valve")

# Independent random streams per (seed, index); changing one never shifts another.
STREAM_MACHINE = 0
STREAM_ANOMALY = 1
STREAM_BANK_RENDER = 2
STREAM_NORMAL_CLIP = 3
STREAM_CLI_RENDER = 4


@dataclass(frozen=True)
class Hum:
    """Electrical hum: magnetostriction makes the core vibrate at twice the line frequency."""

    line_hz: float
    rms: float
    harmonics: tuple[float, ...]  # relative amplitudes of 1, 2, 3 … × (2 × line_hz)

    @property
    def fundamental_hz(self) -> float:
        return 2.0 * self.line_hz


@dataclass(frozen=True)
class Shaft:
    """Rotation: residual imbalance gives 1× rpm, misalignment and looseness 2× and 3×."""

    rpm: float
    rms_1x: float
    rel_2x: float
    rel_3x: float

    @property
    def hz(self) -> float:
        return self.rpm / 60.0


@dataclass(frozen=True)
class Bearing:
    """Rolling-element bearing geometry; the fault frequencies follow from kinematics."""

    balls: int
    d_over_D: float  # ball diameter / pitch diameter
    contact_deg: float

    def _k(self) -> float:
        return self.d_over_D * math.cos(math.radians(self.contact_deg))

    def ftf(self, shaft_hz: float) -> float:
        """Fundamental train (cage) frequency."""
        return 0.5 * shaft_hz * (1.0 - self._k())

    def bpfo(self, shaft_hz: float) -> float:
        """Ball-pass frequency, outer race: rate at which balls roll over an outer-race defect."""
        return 0.5 * self.balls * shaft_hz * (1.0 - self._k())

    def bpfi(self, shaft_hz: float) -> float:
        """Ball-pass frequency, inner race: faster, because the inner race turns with the shaft."""
        return 0.5 * self.balls * shaft_hz * (1.0 + self._k())

    def bsf(self, shaft_hz: float) -> float:
        """Ball spin frequency."""
        k = self._k()
        return shaft_hz * (1.0 - k * k) / (2.0 * self.d_over_D)


@dataclass(frozen=True)
class Resonance:
    """A structural mode that impacts ring; ``damping`` is the damping ratio ζ."""

    hz: float
    damping: float


@dataclass(frozen=True)
class Broadband:
    """Machine or background noise with a power spectrum falling as f^-colour (0 white, 1 pink)."""

    rms: float
    colour: float


@dataclass(frozen=True)
class Fan:
    """Fan noise: turbulent broadband around ``centre_hz`` plus a blade-pass tone."""

    blades: int
    rms: float
    centre_hz: float
    width_octaves: float
    tone_rms: float


@dataclass(frozen=True)
class Valve:
    """Solenoid valve clicks at irregular intervals, each ringing its own short resonance."""

    mean_interval_s: float
    peak: float  # click peak relative to the rms of the rest of the machine
    resonance: Resonance


@dataclass(frozen=True)
class FaultTraits:
    """How this machine's faults would sound if it developed them; drawn with the machine."""

    severity: float  # fault rms relative to the healthy machine rms
    jitter: float  # slip: relative std of the interval between impacts (1–2 %)
    am_depth: float  # inner race: modulation depth of impact strength at shaft rate
    imbalance_gain: float  # imbalance: factor on the 1× rpm tone


@dataclass(frozen=True)
class Machine:
    """One device's machine; ``None`` sources are absent. ``anomalies`` lists the faults it can have."""

    kind: str
    background_colour: float
    level_dbfs: float
    resonance: Resonance
    fault: FaultTraits
    hum: Hum | None = None
    shaft: Shaft | None = None
    bearing: Bearing | None = None
    noise: Broadband | None = None
    fan: Fan | None = None
    valve: Valve | None = None
    anomalies: tuple[str, ...] = field(default=())

    def label(self, anomaly: str | None) -> str:
        """``kind/condition``, e.g. ``fan/bearing-outer`` or ``motor/normal``."""
        return f"{self.kind}/{anomaly or 'normal'}"

    def describe(self) -> dict[str, str]:
        """Flat, human-readable parameters for a labels CSV (empty where a source is absent)."""
        out: dict[str, str] = {
            "kind": self.kind,
            "level_dbfs": f"{self.level_dbfs:.1f}",
            "background_colour": f"{self.background_colour:.2f}",
        }
        out["line_hz"] = f"{self.hum.line_hz:g}" if self.hum else ""
        out["hum_hz"] = f"{self.hum.fundamental_hz:g}" if self.hum else ""
        if self.shaft is not None:
            fr = self.shaft.hz
            out["rpm"] = f"{self.shaft.rpm:.1f}"
            out["shaft_hz"] = f"{fr:.3f}"
        else:
            out["rpm"] = out["shaft_hz"] = ""
        if self.bearing is not None and self.shaft is not None:
            b, fr = self.bearing, self.shaft.hz
            out.update(
                balls=str(b.balls),
                d_over_D=f"{b.d_over_D:.3f}",
                contact_deg=f"{b.contact_deg:.1f}",
                ftf_hz=f"{b.ftf(fr):.3f}",
                bpfo_hz=f"{b.bpfo(fr):.3f}",
                bpfi_hz=f"{b.bpfi(fr):.3f}",
                bsf_hz=f"{b.bsf(fr):.3f}",
            )
        else:
            for key in (
                "balls",
                "d_over_D",
                "contact_deg",
                "ftf_hz",
                "bpfo_hz",
                "bpfi_hz",
                "bsf_hz",
            ):
                out[key] = ""
        out["resonance_hz"] = f"{self.resonance.hz:.0f}"
        out["damping"] = f"{self.resonance.damping:.3f}"
        out["fan_blades"] = str(self.fan.blades) if self.fan else ""
        out["valve_interval_s"] = f"{self.valve.mean_interval_s:.2f}" if self.valve else ""
        return out

    @classmethod
    def draw(cls, seed: int, index: int, model: str = "mixed") -> Machine:
        """The machine of device ``index`` in the fleet of ``seed``; same inputs, same machine."""
        import numpy as np

        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
        if seed < 0 or index < 0:
            raise ValueError("seed and index must be non-negative")
        rng = np.random.default_rng([seed, index, STREAM_MACHINE])
        u = rng.uniform

        # Drawn in a fixed order for every model, so a device keeps its machine across models.
        line = 50.0 if rng.random() < 0.5 else 60.0
        ratio = u(0.3, 0.6)
        hum = Hum(line, u(0.15, 0.4), tuple(float(ratio**h) for h in range(6)))
        # Induction motors run a little below synchronous speed (slip); 2- or 4-pole.
        poles = 2 if rng.random() < 0.5 else 4
        rpm = 120.0 * line / poles * (1.0 - u(0.01, 0.05))
        shaft = Shaft(rpm, u(0.04, 0.12), u(0.2, 0.6), u(0.05, 0.3))
        bearing = Bearing(
            int(rng.integers(7, 13)), u(0.15, 0.3), float(rng.choice([0.0, 15.0, 25.0]))
        )
        resonance = Resonance(u(1800.0, 4500.0), u(0.03, 0.07))
        noise = Broadband(u(0.15, 0.35), u(0.3, 1.2))
        fan = Fan(
            int(rng.integers(5, 13)), u(0.3, 0.7), u(300.0, 1500.0), u(1.0, 2.5), u(0.05, 0.2)
        )
        valve = Valve(u(0.4, 1.5), u(2.5, 5.0), Resonance(u(2500.0, 6000.0), u(0.08, 0.15)))
        traits = FaultTraits(u(0.5, 0.9), u(0.01, 0.02), u(0.5, 0.9), u(4.0, 8.0))
        background = u(0.5, 1.5)
        level = u(-28.0, -20.0)
        pick = rng.random()

        base = cls(
            kind=model,
            background_colour=background,
            level_dbfs=level,
            resonance=resonance,
            fault=traits,
        )
        if model == "hum":
            return replace(base, hum=hum)
        if model == "fan":
            return replace(base, fan=fan)
        if model == "valve":
            return replace(base, valve=valve)
        kind = "motor" if pick < 0.4 else "fan" if pick < 0.75 else "pump"
        return replace(
            base,
            kind=kind,
            hum=hum,
            shaft=shaft,
            bearing=bearing,
            noise=noise,
            fan=fan if kind == "fan" else None,
            valve=valve if kind == "pump" else None,
            anomalies=FAULTS if model == "mixed" else (model,),
        )


def draw_anomaly(machine: Machine, probability: float, rng_key: tuple[int, int, int]) -> str | None:
    """Switch a fault on with ``probability``, choosing among those the machine can have."""
    import numpy as np

    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"anomaly probability must be within [0, 1], got {probability}")
    rng = np.random.default_rng(list(rng_key))
    hit, which = rng.random(), rng.random()
    if not machine.anomalies or hit >= probability:
        return None
    return machine.anomalies[int(which * len(machine.anomalies))]
