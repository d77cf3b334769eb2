"""What is on a page whose layout could not be read: no ECG, flat lines, or too few leads.

"Found 2 trace rows" is true of half an ECG and of a bar chart alike, and a user needs to
know which: a picture that is not an ECG (``not_an_ecg``), an ECG printed with its leads off
(``no_signal``), or part of one (``incomplete_ecg``: say what was found). Each horizontal
band of ink is followed as one line (its ink's mean height per column), and judged the way
``imaging.judge`` judges a lead: a flat line, or beats at a heart's rate, spiky like QRS
complexes. A page with at least three such rows, a third of its rows or more, keeps the
layout reader's own refusal.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..contract import PAGE_MM, PAPER_SPEED_MM_S
from .errors import IntakeError
from .judge import MAX_RATE_BPM, MIN_RATE_BPM, detect_beats, spikiness
from .layout import find_baselines

__all__ = ["why_no_layout"]

MIN_ROW_COVERAGE = 0.35  # share of the page's width a row of trace spans (a rhythm strip: ~0.8)
FLAT_MM = 0.8  # a row whose line stays within this of its baseline is flat
# A row of ECG trace, measured on real pictures and the generator's pages: its line spans at
# least 2.8 mm (5th to 95th percentile; a line of text spans ~2 mm) and its slope comes in
# bursts (spikiness 0.43-0.92; pixel noise ~0.38, a table's rules ~0.97).
MIN_ROW_SPAN_MM = 2.8
ROW_SPIKINESS = (0.42, 0.93)
MAX_ROWS = 15  # 12x1 with three rhythm strips


def _row_line(mask: np.ndarray, y: int, half: int) -> np.ndarray:
    """Mean height (px, up is positive) of the ink in the band ``y +- half``, per column;
    NaN where a column has none."""
    band = mask[max(0, y - half) : y + half + 1]
    ys = np.arange(band.shape[0], dtype=np.float32)[:, None]
    count = band.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (band * ys).sum(axis=0) / count
    return np.where(count > 0, band.shape[0] / 2 - centre, np.nan)


def _row_kind(line: np.ndarray, px_per_mm: float) -> str:
    """``"ecg"``, ``"flat"`` or ``"other"``, for one band's line."""
    finite = np.isfinite(line)
    if finite.mean() < 0.5:
        return "other"
    k = np.arange(line.size)
    x = np.interp(k, k[finite], line[finite]) / px_per_mm  # mm, 10 mm = 1 mV at standard gain
    x = x[np.flatnonzero(finite)[0] : np.flatnonzero(finite)[-1] + 1]
    span = np.percentile(x, 95) - np.percentile(x, 5)  # a calibration pulse is ~2 % of a row
    if span < FLAT_MM:
        return "flat"
    if span < MIN_ROW_SPAN_MM or not ROW_SPIKINESS[0] <= spikiness(x) <= ROW_SPIKINESS[1]:
        return "other"
    rate = PAPER_SPEED_MM_S * px_per_mm  # columns per second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        beats = detect_beats(x, rate)
    if beats.size < 3:
        return "other"
    intervals = np.diff(beats) / rate
    bpm = 60.0 / float(np.median(intervals))
    regular = float(np.std(intervals) / np.mean(intervals)) < 0.35
    return "ecg" if MIN_RATE_BPM <= bpm <= MAX_RATE_BPM and regular else "other"


def why_no_layout(mask: np.ndarray, error: IntakeError) -> IntakeError:
    """The refusal for a page whose trace ``mask`` the layout reader refused with ``error``."""
    h, w = mask.shape
    px_per_mm = w / PAGE_MM[0]
    ys, coverage = find_baselines(mask, px_per_mm)
    ys = ys[coverage >= MIN_ROW_COVERAGE]
    half = max(2, int(round(6 * px_per_mm)))
    kinds = [_row_kind(_row_line(mask, int(y), half), px_per_mm) for y in ys]
    ecg, flat = kinds.count("ecg"), kinds.count("flat")
    # More rows than any layout prints (12 leads and 3 strips): a table's rules, not leads off.
    if ecg == 0 and 3 <= flat <= MAX_ROWS:
        return IntakeError(
            "no_signal", f"{flat} rows of flat lines and no heartbeat: were the electrodes connected?"
        )
    # A table's rules crossed by its column lines can pass for a few rows of beats; on an ECG
    # page most rows are trace (a header or text block adds one or two).
    if ecg == 0 or 3 * ecg < len(kinds):
        return IntakeError(
            "not_an_ecg", "no ECG trace found (no row of heartbeats). Is this a picture of a 12-lead ECG?"
        )
    if ecg < 3:
        return IntakeError(
            "incomplete_ecg",
            f"found {ecg} row{'s' if ecg > 1 else ''} of ECG trace; a 12-lead ECG prints at least 3 "
            "(3x4, 6x2 or 12x1). Is the whole page in the picture?",
        )
    return error
