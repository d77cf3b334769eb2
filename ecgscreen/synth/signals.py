"""A parametric 12-lead ECG: each beat is a sum of Gaussian waves projected onto the leads.

Every wave (P, septal q, R, S, T and the pathological extras) carries a frontal-plane vector,
projected onto the six limb leads through the hexaxial system (so Einthoven's law holds
exactly), and six signed amplitudes for V1-V6. Pathology is written in by adding or
reshaping waves, so each marker is a known, measurable change in known leads:

* myocardial scar, in one territory: pathological Q waves, R-wave loss, fragmented QRS,
  T inversion — an extra force pointing away from the scarred wall;
* LVEF < 50 %: QRS widening (optionally a left bundle branch block pattern), low voltage,
  sinus tachycardia, poor R-wave progression.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..leads import LIMB_LEAD_ANGLES_DEG, LIMB_LEADS, PRECORDIAL_LEADS, TERRITORIES

__all__ = [
    "SAMPLE_RATE",
    "N_SAMPLES",
    "Wave",
    "Markers",
    "Noise",
    "BeatShape",
    "draw_shape",
    "apply_markers",
    "r_peak_times",
    "synthesize",
]

SAMPLE_RATE = 500  # Hz
N_SAMPLES = 5000  # 10 s

_LIMB_ANGLES = np.deg2rad([LIMB_LEAD_ANGLES_DEG[lead] for lead in LIMB_LEADS])
# Frontal-plane direction of each territory's wall; anterior is seen by V1-V4 only.
_TERRITORY_AXIS_DEG = {"inferior": 90.0, "lateral": -15.0, "anterior": None}
_QRS_WAVES = ("q", "r", "s", "r2", "path_q", "notch_a", "notch_b", "r_loss")


@dataclass(frozen=True)
class Wave:
    """One Gaussian component of a beat, relative to the R peak.

    ``frontal`` is a complex number: magnitude in mV, argument the frontal-plane direction.
    ``precordial`` holds the signed deflections (mV) in V1..V6. A wave that ``follows_qt``
    (repolarisation) sits at ``t`` after the end of the beat's QT interval instead.
    """

    name: str
    t: float
    sigma: float
    frontal: complex
    precordial: tuple[float, ...]
    follows_qt: bool = False

    def lead_amplitudes(self) -> np.ndarray:
        """Signed amplitude of this wave in each of the 12 leads (mV)."""
        limb = np.real(self.frontal * np.exp(-1j * _LIMB_ANGLES))
        return np.concatenate([limb, np.asarray(self.precordial)])

    def scaled(self, factor: float) -> Wave:
        return replace(
            self,
            frontal=self.frontal * factor,
            precordial=tuple(a * factor for a in self.precordial),
        )


@dataclass(frozen=True)
class Markers:
    """Strength (0 = absent, 1 = florid) of each disease marker written into one ECG."""

    scar_territory: str | None = None
    q_wave: float = 0.0
    r_loss: float = 0.0
    fragmentation: float = 0.0
    t_inversion: float = 0.0
    qrs_widening: float = 0.0
    lbbb: bool = False
    low_voltage: float = 0.0
    tachycardia: float = 0.0
    poor_r_progression: float = 0.0


@dataclass(frozen=True)
class Noise:
    """Recording noise, in mV."""

    wander: float = 0.05
    emg: float = 0.01
    powerline: float = 0.0
    powerline_hz: float = 50.0


@dataclass(frozen=True)
class BeatShape:
    """A patient's beat (its waves) and rhythm."""

    waves: tuple[Wave, ...]
    heart_rate: float  # beats per minute
    qtc: float = 0.41  # s (Bazett)
    lead_gain: tuple[float, ...] = field(default=(1.0,) * 12)  # electrode placement jitter

    def wave(self, name: str) -> Wave | None:
        return next((w for w in self.waves if w.name == name), None)


def _polar(magnitude: float, angle_deg: float) -> complex:
    return magnitude * np.exp(1j * np.deg2rad(angle_deg))


def draw_shape(rng: np.random.Generator) -> BeatShape:
    """A healthy adult's beat with the usual spread of axis, voltage and intervals."""
    axis = rng.normal(50.0, 18.0)
    volt = float(np.exp(rng.normal(0.0, 0.15)))
    precordial_jitter = np.exp(rng.normal(0.0, 0.12, 6))
    pr = rng.uniform(0.13, 0.19)

    def pre(values: list[float], scale: float = 1.0) -> tuple[float, ...]:
        return tuple(float(v) for v in np.asarray(values) * precordial_jitter * scale)

    waves = (
        Wave("p", -pr + 0.03, 0.022, _polar(0.15, rng.normal(55, 10)), pre([0.05, 0.08, 0.08, 0.08, 0.08, 0.07])),
        # Septal depolarisation runs left to right: small q in I, aVL, V5-V6, small r in V1.
        Wave("q", -0.028, 0.009, _polar(0.12 * volt, 170.0), pre([0.12, 0.10, 0.0, -0.03, -0.07, -0.08])),
        Wave("r", 0.0, 0.011, _polar(1.0 * volt, axis), pre([0.2, 0.45, 0.75, 1.2, 1.15, 0.85], volt)),
        Wave("s", 0.030, 0.011, _polar(0.2 * volt, axis + 140.0), pre([-0.9, -1.3, -0.85, -0.45, -0.2, -0.08], volt)),
        Wave("t", -0.13, 0.045, _polar(0.3 * volt, axis - 10.0), pre([0.0, 0.35, 0.45, 0.4, 0.3, 0.22]), follows_qt=True),
    )  # fmt: skip
    return BeatShape(
        waves=waves,
        heart_rate=float(rng.uniform(55.0, 90.0)),
        qtc=float(rng.uniform(0.39, 0.44)),
        # Electrode placement moves the chest leads only; limb leads stay Einthoven-exact.
        lead_gain=(1.0,) * 6 + tuple(float(g) for g in np.exp(rng.normal(0.0, 0.08, 6))),
    )


def _territory_mask(territory: str) -> np.ndarray:
    leads = TERRITORIES[territory]
    return np.array([lead in leads for lead in PRECORDIAL_LEADS], dtype=float)


def _add_scar(waves: dict[str, Wave], m: Markers) -> None:
    """Scar removes depolarising myocardium: the net force points away from the wall."""
    territory = m.scar_territory
    axis = _TERRITORY_AXIS_DEG[territory]
    mask = _territory_mask(territory)
    away = _polar(1.0, axis + 180.0) if axis is not None else 0j
    r = waves["r"]
    if m.q_wave > 0:  # a wide (>= 40 ms) and deep Q wave in the territory's leads
        depth = 0.5 * m.q_wave
        waves["path_q"] = Wave("path_q", -0.024, 0.014, away * depth, tuple(-depth * mask))
    if m.r_loss > 0:  # the R wave shrinks where the wall no longer depolarises
        size = 0.7 * m.r_loss * abs(r.frontal)
        precordial = tuple(-0.8 * m.r_loss * a * k for a, k in zip(r.precordial, mask, strict=True))
        waves["r_loss"] = Wave("r_loss", 0.0, r.sigma, away * size, precordial)
    if m.fragmentation > 0:  # a notch (RSR' / slurred QRS) in the territory's leads
        amp = 0.22 * m.fragmentation
        toward = -away
        waves["notch_a"] = Wave("notch_a", 0.014, 0.0045, toward * amp, tuple(amp * mask))
        waves["notch_b"] = Wave("notch_b", 0.024, 0.0045, -toward * amp, tuple(-amp * mask))
    if m.t_inversion > 0:  # repolarisation reversed over the scar
        t = waves["t"]
        frontal = away * 1.6 * m.t_inversion * max(abs(t.frontal), 0.2)
        flip = tuple(
            -1.6 * m.t_inversion * max(abs(a), 0.2) * k for a, k in zip(t.precordial, mask, strict=True)
        )
        waves["t_inv"] = Wave("t_inv", t.t, t.sigma, frontal, flip, follows_qt=True)


def _add_low_ef(waves: dict[str, Wave], m: Markers) -> None:
    """A failing ventricle: slow, small, late-progressing depolarisation."""
    widen = 1.0 + 0.9 * m.qrs_widening
    for name in ("q", "r", "s", "path_q", "r_loss"):
        if name in waves:
            w = waves[name]
            waves[name] = replace(w, sigma=w.sigma * widen, t=w.t * widen)
    if m.lbbb:
        # Left bundle branch block: no septal q, broad notched R leftward, deep broad S in
        # V1-V3, T discordant to the QRS.
        waves.pop("q", None)
        r = waves["r"]
        waves["r"] = replace(
            r, frontal=_polar(abs(r.frontal), -5.0), precordial=(0.08, 0.12, 0.2, 0.7, 1.1, 1.0)
        )
        waves["r2"] = Wave(
            "r2", 0.045 * widen, r.sigma, _polar(0.65 * abs(r.frontal), -10.0), (0.0, 0.0, 0.0, 0.4, 0.8, 0.8)
        )
        waves["s"] = replace(
            waves["s"], sigma=waves["s"].sigma * 2.0, precordial=(-1.4, -1.8, -1.3, -0.5, 0.0, 0.0)
        )
        t = waves["t"]
        waves["t"] = replace(
            t, frontal=_polar(abs(t.frontal), 170.0), precordial=(0.35, 0.4, 0.3, 0.0, -0.2, -0.25)
        )
    if m.low_voltage > 0:
        for name in _QRS_WAVES:
            if name in waves:
                waves[name] = waves[name].scaled(1.0 - 0.55 * m.low_voltage)
    if m.poor_r_progression > 0:
        keep = 1.0 - 0.75 * m.poor_r_progression * np.array([0.3, 0.7, 0.9, 0.6, 0.1, 0.0])
        r = waves["r"]
        waves["r"] = replace(r, precordial=tuple(float(a) for a in np.asarray(r.precordial) * keep))


def apply_markers(shape: BeatShape, markers: Markers) -> BeatShape:
    """The same patient with the given disease markers written into the beat."""
    waves = {w.name: w for w in shape.waves}
    if markers.scar_territory is not None:
        _add_scar(waves, markers)
    _add_low_ef(waves, markers)
    return replace(
        shape,
        waves=tuple(waves.values()),
        heart_rate=shape.heart_rate + 40.0 * markers.tachycardia,
    )


def r_peak_times(heart_rate: float, rng: np.random.Generator) -> np.ndarray:
    """R-peak times (s) covering the 10 s window and a margin, with sinus arrhythmia."""
    rr = 60.0 / heart_rate
    times = [rng.uniform(-rr, 0.0)]
    phase = rng.uniform(0, 2 * np.pi)
    while times[-1] < 10.0 + rr:
        t = times[-1]
        jitter = 1.0 + 0.035 * np.sin(2 * np.pi * t / 4.0 + phase) + rng.normal(0.0, 0.012)
        times.append(t + rr * jitter)
    return np.asarray(times)


def synthesize(
    shape: BeatShape,
    beats: np.ndarray,
    noise: Noise,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render 10 s of 12-lead ECG (mV, shape ``(12, N_SAMPLES)``, float32)."""
    t = np.arange(N_SAMPLES) / SAMPLE_RATE
    rr = np.diff(beats, append=beats[-1] + np.diff(beats)[-1])
    qt = shape.qtc * np.sqrt(rr)  # Bazett, per beat
    # Time course of each wave summed over beats (W, N), then mixed into the leads (12, W).
    courses = np.empty((len(shape.waves), N_SAMPLES))
    for i, w in enumerate(shape.waves):
        centres = beats + w.t + (qt if w.follows_qt else 0.0)
        courses[i] = np.exp(-0.5 * ((t[None, :] - centres[:, None]) / w.sigma) ** 2).sum(axis=0)
    amplitudes = np.stack([w.lead_amplitudes() for w in shape.waves], axis=1)
    signal = amplitudes @ courses * np.asarray(shape.lead_gain)[:, None]

    # Baseline wander shares its source across leads (respiration), mixed per lead.
    wander = np.zeros(N_SAMPLES)
    for _ in range(2):
        f = rng.uniform(0.12, 0.5)
        wander += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    mix = rng.uniform(0.3, 1.0, (12, 1))
    signal += noise.wander * mix * wander[None, :] / 2.0
    signal += rng.normal(0.0, noise.emg, signal.shape)
    if noise.powerline > 0:
        signal += noise.powerline * np.sin(2 * np.pi * noise.powerline_hz * t + rng.uniform(0, 6.28))
    return signal.astype(np.float32)
