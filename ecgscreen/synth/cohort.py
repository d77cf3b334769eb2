"""The synthetic population: who has scar or a low ejection fraction, and what their ECG shows.

Labels come first (as in life, disease exists whether or not the ECG shows it); the ECG
markers and the clinical features are then drawn *conditional* on the labels. Three things
keep the task from being trivially separable, all scaled by the difficulty knob: marker
strength, recording noise, "silent" disease with no ECG sign, and healthy people with a
benign look-alike (normal variants).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .signals import Markers, Noise

__all__ = ["Difficulty", "DIFFICULTIES", "Patient", "draw_patient", "PREVALENCE"]

# Prevalences and the scar / low-EF coupling. With these numbers about 70 % of low-EF
# patients have scar (ischaemic cardiomyopathy), the rest do not.
PREVALENCE = {"scar": 0.35, "low_ef_given_scar": 0.45, "low_ef_given_no_scar": 0.10}
TERRITORY_P = {"anterior": 0.45, "inferior": 0.35, "lateral": 0.20}


@dataclass(frozen=True)
class Difficulty:
    """How hard the task is: marker strength, noise, silent disease, benign look-alikes."""

    marker_scale: float
    noise_scale: float
    silent_scar: float
    silent_low_ef: float
    mimic_scar: float
    mimic_low_ef: float


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(1.25, 0.5, silent_scar=0.03, silent_low_ef=0.01, mimic_scar=0.03, mimic_low_ef=0.02),
    "standard": Difficulty(1.0, 1.0, silent_scar=0.10, silent_low_ef=0.03, mimic_scar=0.10, mimic_low_ef=0.05),
    "hard": Difficulty(0.7, 1.8, silent_scar=0.20, silent_low_ef=0.10, mimic_scar=0.18, mimic_low_ef=0.14),
}  # fmt: skip


@dataclass(frozen=True)
class Patient:
    """Ground truth for one synthetic ECG."""

    scar: bool
    lvef: float  # %
    territory: str | None
    clinical: dict[str, int]
    markers: Markers
    noise: Noise

    @property
    def low_ef(self) -> bool:
        return self.lvef < 50.0

    def oracle_scores(self) -> tuple[float, float]:
        """Total written-in marker strength per task: what a perfect reader could see."""
        m = self.markers
        scar = m.q_wave + m.r_loss + m.fragmentation + m.t_inversion
        low_ef = m.qrs_widening + m.low_voltage + m.tachycardia + m.poor_r_progression
        return scar, low_ef


def _present(rng: np.random.Generator, probabilities: dict[str, float]) -> list[str]:
    """Which markers show, each independently, at least one."""
    names = [name for name, p in probabilities.items() if rng.random() < p]
    return names or [max(probabilities, key=probabilities.get)]


def _strengths(rng: np.random.Generator, names: list[str], level: float) -> dict[str, float]:
    return {name: float(np.clip(level * rng.uniform(0.6, 1.2), 0.0, 1.2)) for name in names}


def _scar_markers(rng: np.random.Generator, d: Difficulty, scar: bool) -> tuple[str | None, dict]:
    territory = str(rng.choice(list(TERRITORY_P), p=list(TERRITORY_P.values())))
    probabilities = {"q_wave": 0.75, "r_loss": 0.6, "fragmentation": 0.35, "t_inversion": 0.45}
    if scar:
        if rng.random() < d.silent_scar:
            return territory, {}
        level = rng.uniform(0.35, 1.0) * d.marker_scale
        return territory, _strengths(rng, _present(rng, probabilities), level)
    if rng.random() < d.mimic_scar:  # a benign variant: a small q or flat T in one territory
        name = str(rng.choice(list(probabilities)))
        return territory, {name: float(rng.uniform(0.15, 0.5))}
    return None, {}


def _low_ef_markers(rng: np.random.Generator, d: Difficulty, lvef: float) -> dict:
    probabilities = {
        "qrs_widening": 0.55,
        "low_voltage": 0.45,
        "tachycardia": 0.5,
        "poor_r_progression": 0.45,
    }
    if lvef < 50.0:
        if rng.random() < d.silent_low_ef:
            return {}
        severity = float(np.clip((50.0 - lvef) / 22.0, 0.15, 1.0)) * d.marker_scale
        found = _strengths(rng, _present(rng, probabilities), severity)
        if "qrs_widening" in found and found["qrs_widening"] > 0.4 and rng.random() < 0.35:
            found["lbbb"] = True
        return found
    if rng.random() < d.mimic_low_ef:  # anxiety tachycardia, obesity low voltage, lead placement
        name = str(rng.choice(list(probabilities)))
        return {name: float(rng.uniform(0.1, 0.4))}
    return {}


def _clinical(rng: np.random.Generator, scar: bool, low_ef: bool) -> dict[str, int]:
    """Risk factors drawn conditional on the labels: real but partial signal, as in the study."""
    s, e = float(scar), float(low_ef)
    return {
        "age": int(np.clip(round(rng.normal(54.0 + 9.0 * s + 4.0 * e, 11.0)), 20, 95)),
        "female_gender": int(rng.random() < 0.42 - 0.17 * s),
        "dm": int(rng.random() < 0.18 + 0.17 * s),
        "ht": int(rng.random() < 0.40 + 0.18 * s + 0.07 * e),
        "smoke": int(rng.random() < 0.22 + 0.15 * s),
        "dlp": int(rng.random() < 0.38 + 0.17 * s),
    }


def draw_patient(rng: np.random.Generator, difficulty: str = "standard") -> Patient:
    """One patient: labels, clinical features, ECG markers and recording noise."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {', '.join(DIFFICULTIES)}")
    d = DIFFICULTIES[difficulty]
    scar = bool(rng.random() < PREVALENCE["scar"])
    p_low = PREVALENCE["low_ef_given_scar"] if scar else PREVALENCE["low_ef_given_no_scar"]
    if rng.random() < p_low:
        lvef = float(np.clip(rng.normal(37.0, 8.0), 15.0, 49.5))
    else:
        lvef = float(np.clip(rng.normal(60.0, 6.0), 50.5, 78.0))
    lvef = round(lvef, 1)
    territory, scar_found = _scar_markers(rng, d, scar)
    markers = Markers(scar_territory=territory, **scar_found, **_low_ef_markers(rng, d, lvef))
    noise = Noise(
        wander=float(rng.uniform(0.02, 0.10) * d.noise_scale),
        emg=float(rng.uniform(0.005, 0.025) * d.noise_scale),
        powerline=float(rng.uniform(0.005, 0.02) * d.noise_scale) if rng.random() < 0.2 else 0.0,
        powerline_hz=float(rng.choice([50.0, 60.0])),
    )
    return Patient(
        scar=scar,
        lvef=lvef,
        territory=territory if scar else None,
        clinical=_clinical(rng, scar, lvef < 50.0),
        markers=markers,
        noise=noise,
    )
