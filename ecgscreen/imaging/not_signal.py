"""What the trace follower read that is not signal, cut out of a lead: calibration pulses
and the grid's sawtooth.

**Pulses.** The layout reader finds the 1 mV pulse printed before (or after) a row and keeps it out of
the trace; when it misses one (the pulse joined to the trace, printed at the row's far end,
cropped, or a style it does not know) the pulse comes through as a step of several
millivolts at the start or end of a lead: flat top, steep sides, 60-250 ms wide. No heart
draws that: a QRS complex has a peak, not a plateau. Cut it (NaN) and say so.

**Sawtooth.** Where the trace is faint and the grid dark (a photo, a dotted grid), the
follower can run along the grid's 1 mm lines: a comb of peaks 40 ms apart that no heart
draws (seven or more peaks and troughs of 0.2 mV within 0.25 s; a QRS has three, a
fragmented one five). Cut the comb (NaN): the judge sees less coverage, not false beats.

**Edge strokes.** The stroke that joins a pulse, a label or the next row to a lead's first
or last column can be read as a spike of several millivolts at the lead's very edge: far
larger than any beat inside the lead (every beat of a lead is about the same size). Cut it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks

from ..contract import PAPER_SPEED_MM_S
from ..leads import DURATION_S, LEADS, layout_rows
from .signal import EcgSignal

__all__ = ["cut_pulse_steps", "cut_grid_sawtooth", "cut_edge_strokes", "rows_past_pulses"]

EDGE_S = 0.45  # how far into a lead's span a pulse can sit
MIN_WIDTH_S, MAX_WIDTH_S = 0.05, 0.30  # the pulse is 0.2 s wide at 25 mm/s
MIN_HEIGHT_MV = 0.5  # half of the 1 mV pulse: a lead read at half gain still shows it
FLAT_MV = 0.06  # the pulse's top is a ruled line
BRIDGE_S = 0.05  # ...broken for this long at most by what crosses it (a spike, and 10 ms each side)
COMB_PROMINENCE_MV = 0.2
COMB_EXTREMA = 7  # peaks and troughs...
COMB_WINDOW_S = 0.25  # ...within this long


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
    flat_raised = raised & flat & finite
    # A grid line or a speck crossing the plateau breaks it for a few samples: bridge them,
    # where both sides lie at one level (an R wave's top and its S wave's trough do not).
    bridge = int(BRIDGE_S * rate)
    pad = np.zeros(bridge, dtype=bool)
    candidate = ndimage.binary_closing(np.r_[pad, flat_raised, pad], np.ones(bridge, bool))[bridge:-bridge]
    edges = np.flatnonzero(np.diff(np.r_[0, candidate.astype(np.int8), 0]))
    side = int(0.03 * rate)
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if not MIN_WIDTH_S * rate <= end - start <= MAX_WIDTH_S * rate:
            continue
        top = x[start:end][flat_raised[start:end]]
        if top.size < MIN_WIDTH_S * rate or np.subtract(*np.percentile(top, [90, 10])) > 2 * FLAT_MV:
            continue
        height = abs(float(np.nanmedian(x[start:end])) - level)
        # Steep sides: 30 ms outside the plateau the line is back near the baseline (a
        # rounded T wave or ST segment is still high there).
        outside = [x[k] for k in (start - side, end + side) if 0 <= k < x.size and np.isfinite(x[k])]
        if outside and all(abs(v - level) < 0.35 * height for v in outside):
            return int(start), int(end)
    return None


def _edge_pulse(
    values: np.ndarray, span: tuple[float, float], rate: float, at_start: bool
) -> tuple[int, int] | None:
    """``(start, end)``, in samples of ``values`` (one lead, mV), of a calibration pulse read
    within ``EDGE_S`` of the start (or end) of the lead's ``span`` (seconds), or ``None``."""
    edge = int(EDGE_S * rate)
    lo = int(np.ceil(span[0] * rate))
    hi = min(int(np.ceil(span[1] * rate)), values.size)
    if hi - lo < 3 * edge or not np.isfinite(values[lo:hi]).any():
        return None
    level = float(np.nanmedian(values[lo:hi]))
    offset = lo if at_start else hi - edge
    found = _plateau(values[offset : offset + edge], level, rate)
    return None if found is None else (offset + found[0], offset + found[1])


def rows_past_pulses(signal: EcgSignal, page) -> bool:
    """Move the rows' ends past the calibration pulses read into their first and last leads
    (in place on ``page``, a ``layout.PageLayout``); whether any moved.

    A pulse the layout reader missed (joined to the trace, on a photo) makes the row start at
    the pulse: cutting it from the signal (``cut_pulse_steps``) leaves every lead of the row
    late by its width, 0.2-0.3 s, and the row's time axis stretched. Where the pulse shows at
    the start (end) of at least half of the uncalibrated rows, those rows start 40 ms after
    it (end 80 ms before it), as the layout reader places a joined pulse's row. Every row of
    a page starts on one line: a row whose start lies before the others' new line by over
    0.1 s moves by their median shift (its pulse was missed by this check too), one already
    on that line stays."""
    rate = signal.sample_rate
    rows = [row for row in page.rows if not row.calibrated]
    if not rows:
        return False
    leads = layout_rows(page.layout, page.rhythm_leads)
    segments = {id(row): lead_row for row, lead_row in zip(page.rows, leads, strict=True)}
    moved = False
    for at_start in (True, False):
        shifts, lines, found_rows = [], [], set()
        for row in rows:
            segment = segments[id(row)][0 if at_start else -1]
            found = _edge_pulse(signal.lead(segment.lead), (segment.t0, segment.t1), rate, at_start)
            if found is None:
                continue
            t = found[1] / rate + 0.04 if at_start else found[0] / rate - 0.08
            lines.append(float(row.x_at(t)))
            shifts.append(lines[-1] - (row.x_start if at_start else row.x_end))
            found_rows.add(id(row))
        if len(shifts) < max(1, len(rows) / 2):
            continue
        shift = int(round(float(np.median(shifts))))
        line, tolerance = float(np.median(lines)), 0.1 * (rows[0].x_end - rows[0].x_start) / DURATION_S
        for row in rows:
            if at_start and (id(row) in found_rows or row.x_start < line - tolerance):
                row.x_start += shift
                moved = moved or shift != 0
            elif not at_start and (id(row) in found_rows or row.x_end > line + tolerance):
                row.x_end += shift
                moved = moved or shift != 0
    if moved and not any(row.calibrated for row in page.rows):
        # No pulse measured: the page's scale is its rows' length (10 s at 25 mm/s), and the
        # standard gain stands on it; the pulses had lengthened the rows by 2-3 %.
        widths = [row.x_end - row.x_start for row in page.rows]
        page.px_per_mm = float(np.median(widths)) / (DURATION_S * PAPER_SPEED_MM_S)
        for row in page.rows:
            row.px_per_mv = page.gain_mm_per_mv * page.px_per_mm
    return moved


def cut_pulse_steps(signal: EcgSignal) -> list[str]:
    """Blank (NaN) any calibration pulse read into the start or end of a lead, in place;
    the names of the leads that had one."""
    rate = signal.sample_rate
    margin = int(0.03 * rate)  # the pulse's rising and falling strokes
    cut: list[str] = []
    for lead in LEADS:
        if (span := signal.spans.get(lead)) is None:
            continue
        values = signal.values[LEADS.index(lead)]
        lo, hi = int(np.ceil(span[0] * rate)), int(np.ceil(span[1] * rate))
        if (head := _edge_pulse(values, span, rate, at_start=True)) is not None:
            values[lo : head[1] + margin] = np.nan
        elif (tail := _edge_pulse(values, span, rate, at_start=False)) is not None:
            values[tail[0] - margin : hi] = np.nan
        else:
            continue
        cut.append(lead)
    return cut


def _comb(x: np.ndarray, rate: float) -> np.ndarray:
    """Mask of the samples of ``x`` (mV, no NaN) inside a sawtooth."""
    peaks, _ = find_peaks(x, prominence=COMB_PROMINENCE_MV)
    troughs, _ = find_peaks(-x, prominence=COMB_PROMINENCE_MV)
    extrema = np.sort(np.r_[peaks, troughs])
    dense = np.zeros(x.size, dtype=bool)
    window = int(COMB_WINDOW_S * rate)
    for i in range(extrema.size - COMB_EXTREMA + 1):
        first, last = extrema[i], extrema[i + COMB_EXTREMA - 1]
        if last - first <= window:
            dense[first : last + 1] = True
    return dense


def cut_grid_sawtooth(signal: EcgSignal) -> list[str]:
    """Blank (NaN) every sawtooth read into a lead, in place; the names of those leads."""
    cut: list[str] = []
    for i, lead in enumerate(LEADS):
        values = signal.values[i]
        finite = np.flatnonzero(np.isfinite(values))
        if finite.size < COMB_EXTREMA * 2:
            continue
        k = np.arange(finite[0], finite[-1] + 1)
        filled = np.interp(k, finite, values[finite])
        comb = _comb(filled, signal.sample_rate)
        if comb.any():
            values[k[comb]] = np.nan
            cut.append(lead)
    return cut


EDGE_STROKE_S = 0.15  # how far into a lead's span such a stroke reaches
EDGE_STROKE_RATIO = 1.5  # times the largest excursion inside the lead


def cut_edge_strokes(signal: EcgSignal) -> list[str]:
    """Blank (NaN) an excursion at either end of a lead that dwarfs every beat inside it,
    in place; the names of the leads that had one. The ends are those of what was read: a
    lead whose first 0.4 s were not found starts where its trace does."""
    rate = signal.sample_rate
    edge = int(EDGE_STROKE_S * rate)
    cut: list[str] = []
    for i, lead in enumerate(LEADS):
        span = signal.spans.get(lead)
        if span is None:
            continue
        lo = int(np.ceil(span[0] * rate))
        hi = min(int(np.ceil(span[1] * rate)), signal.values.shape[1])
        values = signal.values[i]
        read = np.flatnonzero(np.isfinite(values[lo:hi]))
        if read.size == 0:
            continue
        lo, hi = lo + int(read[0]), lo + int(read[-1]) + 1
        inside = values[lo + edge : hi - edge]
        if hi - lo < 4 * edge or not np.isfinite(inside).any():
            continue
        level = float(np.nanmedian(inside))
        limit = EDGE_STROKE_RATIO * float(np.nanmax(np.abs(inside - level))) + 0.3
        found = False
        for start, stop, at_start in ((lo, lo + edge, True), (hi - edge, hi, False)):
            with np.errstate(invalid="ignore"):
                wild = np.flatnonzero(np.abs(values[start:stop] - level) > limit)
            if wild.size:
                if at_start:
                    values[start : start + wild[-1] + 1] = np.nan
                else:
                    values[start + wild[0] : stop] = np.nan
                found = True
        if found:
            cut.append(lead)
    return cut
