"""Calibration pulses are never signal: cut any that the trace follower read as part of a lead.

The layout reader finds the 1 mV pulse printed before (or after) a row and keeps it out of
the trace; when it misses one (the pulse joined to the trace, printed at the row's far end,
cropped, or a style it does not know) the pulse comes through as a step of several
millivolts at the start or end of a lead: flat top, steep sides, 60-250 ms wide. No heart
draws that: a QRS complex has a peak, not a plateau. Cut it (NaN) and say so.
"""

from __future__ import annotations

import numpy as np

from ..leads import LEADS
from .signal import EcgSignal

__all__ = ["cut_pulse_steps"]

EDGE_S = 0.45  # how far into a lead's span a pulse can sit
MIN_WIDTH_S, MAX_WIDTH_S = 0.05, 0.30  # the pulse is 0.2 s wide at 25 mm/s
MIN_HEIGHT_MV = 0.5  # half of the 1 mV pulse: a lead read at half gain still shows it
FLAT_MV = 0.06  # the pulse's top is a ruled line


def _plateau(x: np.ndarray, level: float, rate: float) -> tuple[int, int] | None:
    """``(start, end)`` of the flat run of samples in ``x`` (mV), raised from the lead's
    ``level`` and with steep sides, that looks like a calibration pulse, or ``None``."""
    finite = np.isfinite(x)
    if finite.sum() < MIN_WIDTH_S * rate:
        return None
    raised = np.abs(x - level) >= MIN_HEIGHT_MV
    # Flat: each sample within FLAT_MV of its neighbour 10 ms away.
    lag = max(1, int(0.01 * rate))
    flat = np.zeros_like(raised)
    flat[lag:] = np.abs(x[lag:] - x[:-lag]) <= FLAT_MV
    candidate = raised & flat & finite
    edges = np.flatnonzero(np.diff(np.r_[0, candidate.astype(np.int8), 0]))
    side = int(0.03 * rate)
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if not MIN_WIDTH_S * rate <= end - start <= MAX_WIDTH_S * rate:
            continue
        height = abs(float(np.nanmedian(x[start:end])) - level)
        # Steep sides: 30 ms outside the plateau the line is back near the baseline (a
        # rounded T wave or ST segment is still high there).
        outside = [x[k] for k in (start - side, end + side) if 0 <= k < x.size and np.isfinite(x[k])]
        if outside and all(abs(v - level) < 0.35 * height for v in outside):
            return int(start), int(end)
    return None


def cut_pulse_steps(signal: EcgSignal) -> list[str]:
    """Blank (NaN) any calibration pulse read into the start or end of a lead, in place;
    the names of the leads that had one."""
    rate = signal.sample_rate
    edge = int(EDGE_S * rate)
    margin = int(0.03 * rate)  # the pulse's rising and falling strokes
    cut: list[str] = []
    for lead in LEADS:
        span = signal.spans.get(lead)
        if span is None:
            continue
        i = LEADS.index(lead)
        lo = int(np.ceil(span[0] * rate))
        hi = min(int(np.ceil(span[1] * rate)), signal.values.shape[1])
        if hi - lo < 3 * edge:
            continue
        values = signal.values[i]
        if not np.isfinite(values[lo:hi]).any():
            continue
        level = float(np.nanmedian(values[lo:hi]))
        head = _plateau(values[lo : lo + edge], level, rate)
        if head is not None:
            values[lo : lo + head[1] + margin] = np.nan
            cut.append(lead)
            continue
        tail = _plateau(values[hi - edge : hi], level, rate)
        if tail is not None:
            values[hi - edge + tail[0] - margin : hi] = np.nan
            cut.append(lead)
    return cut
