"""The 12-lead signal: what every input file becomes before the model sees it.

A waveform DICOM already is one; a printout (PDF, scan, photo) is digitised into one
(``imaging.digitize``). One painter (``imaging.canonical``) draws the model input from it, so
one ECG gets one answer whatever file it came in, and ``ecgscreen digitize`` exports it.

Values are millivolts on a common time axis: sample ``k`` is ``k / sample_rate`` seconds
after the start of the recording (the left edge of a printed row). A lead is NaN where it
was not recorded or not printed: a 3x4 printout shows each lead for 2.5 s only (``spans``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..contract import SIGNAL_RATE_HZ
from ..leads import DURATION_S, LEADS

__all__ = ["EcgSignal", "GAIN_SOURCES", "resample"]

# Where the voltage scale came from: the recording itself, the printed 1 mV pulse, the
# printed "10 mm/mV" text, or the standard 10 mm/mV assumed (flagged in the warnings).
GAIN_SOURCES = ("waveform", "pulse", "text", "standard")


@dataclass
class EcgSignal:
    """Twelve leads in ``LEADS`` order, ``(12, N)`` float32 mV at ``sample_rate`` Hz."""

    values: np.ndarray
    sample_rate: float = SIGNAL_RATE_HZ
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # lead -> (t0, t1) s
    confidence: dict[str, float] = field(default_factory=dict)  # lead -> 0..1
    gain_source: str = "waveform"
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[0] != len(LEADS):
            raise ValueError(f"an ECG signal is (12, N); got shape {self.values.shape}")
        if self.gain_source not in GAIN_SOURCES:
            raise ValueError(f"gain_source {self.gain_source!r} is not one of {', '.join(GAIN_SOURCES)}")

    @property
    def duration_s(self) -> float:
        return self.values.shape[1] / self.sample_rate

    def lead(self, name: str) -> np.ndarray:
        return self.values[LEADS.index(name)]

    def put(self, lead: str, times: np.ndarray, values: np.ndarray, span: tuple[float, float]) -> None:
        """Set ``lead`` to ``values`` at ``times`` (s, on this signal's sample grid) and NaN
        elsewhere; ``span`` is what was printed; the confidence is the share of it read."""
        i = LEADS.index(lead)
        self.values[i] = np.nan
        k = np.round(np.asarray(times) * self.sample_rate).astype(int)
        ok = k < self.values.shape[1]
        self.values[i, k[ok]] = values[ok]
        self.spans[lead] = span
        self.confidence[lead] = round(float(np.isfinite(values).mean()) if values.size else 0.0, 3)

    @classmethod
    def from_leads(
        cls,
        leads: dict[str, np.ndarray],
        sample_rate: float,
        gain_source: str = "waveform",
        warnings: list[str] | None = None,
    ) -> EcgSignal:
        """A recording of some leads (each sampled from t = 0 at ``sample_rate``), resampled to
        ``SIGNAL_RATE_HZ``; absent leads are NaN with confidence 0."""
        n = int(round(max(len(v) for v in leads.values()) / sample_rate * SIGNAL_RATE_HZ))
        values = np.full((len(LEADS), n), np.nan, dtype=np.float32)
        spans, confidence = {}, {}
        for i, name in enumerate(LEADS):
            if name in leads:
                values[i] = resample(np.asarray(leads[name], dtype=np.float64), sample_rate, n)
                spans[name] = (0.0, n / SIGNAL_RATE_HZ)
                confidence[name] = 1.0
            else:
                confidence[name] = 0.0
        return cls(values, SIGNAL_RATE_HZ, spans, confidence, gain_source, list(warnings or []))

    @classmethod
    def empty(cls, duration_s: float = DURATION_S) -> EcgSignal:
        n = int(round(duration_s * SIGNAL_RATE_HZ))
        return cls(np.full((len(LEADS), n), np.nan, dtype=np.float32), confidence=dict.fromkeys(LEADS, 0.0))


def resample(values: np.ndarray, rate: float, n: int) -> np.ndarray:
    """``values`` sampled at ``rate`` Hz from t = 0, linearly interpolated onto ``n`` samples at
    ``SIGNAL_RATE_HZ``; a higher rate is first averaged down so no spike aliases."""
    values = np.asarray(values, dtype=np.float64)
    if rate == SIGNAL_RATE_HZ and values.size == n:
        return values.astype(np.float32)
    factor = int(rate // SIGNAL_RATE_HZ)
    if factor >= 2:  # 1000 Hz -> 500 Hz: a box filter of the ratio, then interpolate
        kernel = np.ones(factor) / factor
        values = np.convolve(values, kernel, mode="same")
    t_in = np.arange(values.size) / rate
    t_out = np.arange(n) / SIGNAL_RATE_HZ
    out = np.interp(t_out, t_in, values, left=np.nan, right=np.nan)
    return out.astype(np.float32)
