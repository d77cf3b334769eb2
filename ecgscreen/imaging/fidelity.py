"""How faithfully a digitised signal reproduces the recording: the PhysioNet Challenge 2024
signal-to-noise ratio.

Per lead, over the stretch the printout shows: ``10 log10(sum(truth^2) / sum(noise^2))``
where ``noise = estimate - truth`` after the best time shift within +-0.1 s and the removal
of a constant offset (neither says anything about the trace's shape). NaN in the estimate
counts as 0 mV, as in the Challenge. The winner of the Challenge reached 17.0 dB in
cross-validation and 12.15 dB on real scans. ``aligned=False`` is the Challenge's own
definition: no shift and no offset removed (a reading's time or baseline error counts).
"""

from __future__ import annotations

import numpy as np

from ..leads import LEADS
from .signal import EcgSignal

__all__ = ["lead_snr_db", "signal_snr_db", "MAX_SHIFT_S"]

MAX_SHIFT_S = 0.1


def lead_snr_db(
    truth: np.ndarray,
    estimate: np.ndarray,
    rate: float,
    max_shift_s: float = MAX_SHIFT_S,
    aligned: bool = True,
) -> float:
    """SNR (dB) of ``estimate`` against ``truth``: equal-length arrays at ``rate`` Hz; the
    best over shifts and offsets (``aligned``), else as they stand."""
    truth = np.asarray(truth, dtype=np.float64)
    estimate = np.nan_to_num(np.asarray(estimate, dtype=np.float64), nan=0.0)
    if truth.shape != estimate.shape:
        raise ValueError(f"truth {truth.shape} and estimate {estimate.shape} differ in length")
    n = truth.size
    best = -np.inf
    reach = int(max_shift_s * rate) if aligned else 0
    for shift in range(-reach, reach + 1):
        a = truth[max(0, shift) : n + min(0, shift)]
        b = estimate[max(0, -shift) : n - max(0, shift)]
        if a.size < n // 2:
            continue
        noise = b - a
        if aligned:
            noise -= noise.mean()
        power = float(np.dot(noise, noise))
        signal = float(np.dot(a, a))
        snr = 10 * np.log10(max(signal, 1e-12) / max(power, 1e-12))
        best = max(best, snr)
    return float(best)


def signal_snr_db(
    truth: np.ndarray, truth_rate: float, signal: EcgSignal, aligned: bool = True
) -> dict[str, float]:
    """Per lead, the SNR of ``signal`` over the span it printed, against the ``(12, N)``
    ``truth`` (mV, ``LEADS`` order, sampled from t = 0 at ``truth_rate``); ``aligned`` as
    ``lead_snr_db``."""
    out: dict[str, float] = {}
    t_truth = np.arange(truth.shape[1]) / truth_rate
    for i, lead in enumerate(LEADS):
        span = signal.spans.get(lead)
        if span is None:
            continue
        k = np.arange(int(np.ceil(span[0] * signal.sample_rate)), int(np.ceil(span[1] * signal.sample_rate)))
        k = k[k < signal.values.shape[1]]
        reference = np.interp(k / signal.sample_rate, t_truth, truth[i])
        out[lead] = lead_snr_db(reference, signal.values[i, k], signal.sample_rate, aligned=aligned)
    return out
