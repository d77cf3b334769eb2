"""Name full-width rhythm strips by what they print, not by where they sit.

A cart records the twelve leads at once and prints every row from the same 10 s, so a
rhythm strip of lead II repeats, at the same instants, the samples lead II shows in its
window of the rows above (0-2.5 s of the second row of a 3x4 page). Each strip is therefore
named by the window of the rows of leads it matches, trace against trace: heights above
the baseline per image column, compared at equal times. The same test tells a 3x4 page with
three strips from a 6x2 page (both six rows): on the first, each of the bottom three rows
matches a window of the top three; on the second, the bottom rows hold other leads.

Works on the trace mask and the rows ``layout`` found, before any lead is followed: a few
milliseconds a page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.ndimage import uniform_filter1d

from ..leads import DURATION_S, Segment

if TYPE_CHECKING:
    from .layout import Row

__all__ = [
    "split_marks", "row_profiles", "mark_counts", "similarity", "best_matches", "label_crop", "label_likeness",
    "MATCH", "LABEL_MATCH", "LABEL_MARGIN", "STRIP_LEADS", "identify_strip",
]  # fmt: skip

MATCH = 0.6  # a strip repeats a window of the rows above when it matches it this well
_MARK_MM = 4.0  # shapes smaller than this both ways are labels and ticks, not trace
LABEL_MATCH = 0.8  # a strip's label is the lead label it overlaps this well (Dice) ...
LABEL_MARGIN = 0.1  # ... and this much better than any other
_GLYPH_MM = (1.2, 6.0)  # heights of a lead label's characters
_SHIFT = 3  # columns two rows' time axes may disagree by


def split_marks(
    mask: np.ndarray, px_per_mm: float, pieces: tuple[np.ndarray, list] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``mask`` as its trace (shapes over 4 mm one way or the other) and its marks (the
    small shapes: lead labels, lead-change ticks, text). ``pieces``: ``mask``'s 8-connected
    pieces and their boxes, where the caller has them (``ndimage.label``, ``find_objects``)."""
    labels, boxes = pieces if pieces is not None else _pieces(mask)
    minimum = _MARK_MM * px_per_mm
    keep = np.zeros(len(boxes) + 1, dtype=bool)
    for index, box in enumerate(boxes, start=1):
        if box is not None:
            keep[index] = box[0].stop - box[0].start >= minimum or box[1].stop - box[1].start >= minimum
    trace = keep[labels]
    return trace, mask & ~trace


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, list]:
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    return labels, ndimage.find_objects(labels)


def mark_counts(marks: np.ndarray, rows: list[Row], times: tuple[float, ...]) -> np.ndarray:
    """Per row and time ``t``: the mark pixels in the row's band from 0.1 s before to 0.5 s
    after ``t`` (where a cart prints the tick and the label of a lead that starts at t)."""
    counts = np.zeros((len(rows), len(times)))
    for r, row in enumerate(rows):
        for k, t in enumerate(times):
            x0, x1 = (int(round(float(row.x_at(v)))) for v in (t - 0.1, t + 0.5))
            counts[r, k] = marks[row.top : row.bottom, max(0, x0) : max(0, x1)].sum()
    return counts


def row_profiles(trace: np.ndarray, rows: list[Row]) -> list[np.ndarray]:
    """Per row, the height above its baseline (px, up positive) of the centre of the trace's
    ink in each image column from ``x_start`` to ``x_end``; NaN where the row's band has
    none. ``trace``: the page's trace without its marks (``split_marks``), so a label does
    not pull the centre up. Smoothed over three columns."""
    profiles = []
    for row in rows:
        # A row's ends may lie off the picture (taken from the other rows): no ink there.
        band = np.zeros((row.bottom - row.top, row.x_end + 1 - row.x_start), dtype=bool)
        x0, x1 = max(row.x_start, 0), min(row.x_end + 1, trace.shape[1])
        if x1 > x0:
            band[:, x0 - row.x_start : x1 - row.x_start] = trace[row.top : row.bottom, x0:x1]
        has = band.any(axis=0)
        first = np.argmax(band, axis=0)
        last = band.shape[0] - 1 - np.argmax(band[::-1], axis=0)
        x = np.arange(row.x_start, row.x_end + 1, dtype=np.float64)
        height = row.baseline(x) - (row.top + (first + last) / 2.0)
        filled = np.where(has, height, 0.0)
        weight = uniform_filter1d(has.astype(np.float64), 3, mode="nearest")
        smooth = uniform_filter1d(filled, 3, mode="nearest") / np.maximum(weight, 1e-9)
        profiles.append(np.where(weight > 0, smooth, np.nan))
    return profiles


def _window(
    profile: np.ndarray, row: Row, t0: float, t1: float, shift: int = 0, n: int | None = None
) -> np.ndarray:
    """The profile over ``[t0, t1)`` s, one value per column of the row (or ``n`` values from
    ``t0`` on), ``shift`` columns on; NaN off the row."""
    width = row.x_end - row.x_start
    start = int(round(width * t0 / DURATION_S))
    count = int(round(width * t1 / DURATION_S)) - start if n is None else n
    columns = np.arange(start, start + count) + shift
    return np.where(
        (columns >= 0) & (columns < profile.size), profile[np.clip(columns, 0, profile.size - 1)], np.nan
    )


def label_crop(marks: np.ndarray, row: Row, t0: float, px_per_mm: float) -> np.ndarray | None:
    """The label printed with the lead that starts at ``t0`` s in ``row``, as a binary crop of
    ``marks``, or ``None``. A row's first lead is labelled before its pulse or just after
    the trace starts (up to 1 s left of it); a later lead just after its lead change (the
    tick at the change itself is left out)."""
    x = float(row.x_at(t0))
    seconds = (row.x_end - row.x_start) / DURATION_S
    x0 = x - 1.0 * seconds if t0 == 0 else x + 0.5 * px_per_mm
    x1 = x + 0.5 * seconds
    region = marks[row.top : row.bottom, max(0, int(x0)) : max(0, int(x1))]
    labels, count = ndimage.label(region, structure=np.ones((3, 3), dtype=int))
    if count == 0:
        return None
    boxes = ndimage.find_objects(labels)
    glyphs = sorted(
        (b[1].start, b[1].stop, b[0].start, b[0].stop, index)
        for index, b in enumerate(boxes, start=1)
        if _GLYPH_MM[0] * px_per_mm <= b[0].stop - b[0].start <= _GLYPH_MM[1] * px_per_mm
    )
    if not glyphs:
        return None
    # The word the leftmost character starts: characters side by side, at most 1.5 mm apart.
    word = [glyphs[0]]
    for left, right, top, bottom, index in glyphs[1:]:
        last = word[-1]
        overlap = min(bottom, last[3]) - max(top, last[2])
        if left - last[1] <= 1.5 * px_per_mm and overlap >= 0.5 * min(bottom - top, last[3] - last[2]):
            word.append((left, right, top, bottom, index))
    mask = np.isin(labels, [g[4] for g in word])
    rows_, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows_[0] : rows_[-1] + 1, cols[0] : cols[-1] + 1]


def label_likeness(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Dice overlap of two label crops scaled to one size (0 when either is missing or their
    proportions differ by over a third: "II" is not "aVR")."""
    if a is None or b is None:
        return 0.0
    ratio_a, ratio_b = a.shape[1] / a.shape[0], b.shape[1] / b.shape[0]
    if max(ratio_a, ratio_b) > 1.35 * min(ratio_a, ratio_b):
        return 0.0
    size = (24, max(8, int(round(12 * (ratio_a + ratio_b)))))
    scaled = [
        ndimage.zoom(c.astype(np.float32), (size[0] / c.shape[0], size[1] / c.shape[1]), order=1)[
            : size[0], : size[1]
        ]
        for c in (a, b)
    ]
    if scaled[0].shape != scaled[1].shape:
        return 0.0
    blurred = [ndimage.uniform_filter(c, 3) > 0.25 for c in scaled]
    total = blurred[0].sum() + blurred[1].sum()
    return float(2 * (blurred[0] & blurred[1]).sum() / total) if total else 0.0


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 for the same trace, about 0 for unrelated ones, -1 for one the other's mirror:
    ``1 - |a - b|^2 / (|a|^2 + |b|^2)`` over the instants both have, each less its median.
    NaN when fewer than half the instants have ink in both."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 0.5 * a.size:
        return float("nan")
    a, b = a[both] - np.median(a[both]), b[both] - np.median(b[both])
    energy = float(np.dot(a, a) + np.dot(b, b))
    if energy <= 1e-9:
        return float("nan")
    return 1.0 - float(np.dot(a - b, a - b)) / energy


def best_matches(
    profiles: list[np.ndarray], rows: list[Row], lead_rows: list[list[Segment]], strip: int
) -> list[tuple[float, str]]:
    """How well row ``strip`` matches each lead's window in ``lead_rows`` (the rows of leads,
    top of the page first), best first: ``(similarity, lead)``."""
    scores = []
    for r, segments in enumerate(lead_rows):
        for segment in segments:
            theirs = _window(profiles[r], rows[r], segment.t0, segment.t1)
            # Two rows' ends are found to a column or two: the best of a few shifts.
            tried = [
                similarity(
                    _window(profiles[strip], rows[strip], segment.t0, segment.t1, shift, theirs.size), theirs
                )
                for shift in range(-_SHIFT, _SHIFT + 1)
            ]
            score = max((v for v in tried if not np.isnan(v)), default=-1.0)
            scores.append((score, segment.lead))
    return sorted(scores, reverse=True)


# The leads carts print as rhythm strips: what an unlabelled strip may be.
STRIP_LEADS = ("II", "V1", "V5")
STRIP_RESIDUAL = 0.5  # rms of (strip - the lead's own print) over the print's rms, at most
# ... and for a lead other than the one the layout names, since a wrong name puts one lead's
# trace in another's place: on scans and photos a misread II matched V5's misread print
# with residuals 0.30-0.45 (and II's with 0.63-0.68), while a V5 strip on a clean page
# matched its own with 0.08 or less (bench layouts, seed 97).
OTHER_STRIP_RESIDUAL = 0.25


def identify_strip(
    signal, times: np.ndarray, values: np.ndarray, first: str, labelled: bool = False
) -> str | None:
    """The lead an unlabelled rhythm strip prints, once the rows of leads are read: the one
        whose own print (its window in the rows above) the strip repeats sample for sample, as a
        cart prints every row from the same 10 s. Leads of similar shape (II and V5) differ in
        size and detail, so the closest print wins: the smallest residual, below half the
        print's size and clearly below the next lead's (0.7 of it); a lead other than ``first``
    below a quarter of its print's size. ``times``/``values`` are the
        strip's signal (s, mV); ``first`` is the lead its label (``labelled``) or the layout
        names. A read label stands while its lead's print matches at all (below half its
        size): every lead is read with an error of a quarter of its size or so, and II and V5
        often match each other about as well as themselves. ``None`` when no lead matches, or
        two match alike."""
    rate = signal.sample_rate
    residuals: dict[str, float] = {}
    for lead in dict.fromkeys((first, *STRIP_LEADS)):
        span = signal.spans.get(lead)
        if span is None:
            continue
        k = np.arange(int(np.ceil(span[0] * rate)), min(int(np.ceil(span[1] * rate)), signal.values.shape[1]))
        own = signal.lead(lead)[k]
        strip = np.interp(k / rate, times, values, left=np.nan, right=np.nan)
        both = np.isfinite(own) & np.isfinite(strip)
        if both.sum() < 0.8 * k.size or both.sum() < 10:
            continue
        a, b = own[both] - np.median(own[both]), strip[both] - np.median(strip[both])
        size = float(np.sqrt(np.mean(a**2)))
        if size == 0:
            continue
        residuals[lead] = float(np.sqrt(np.mean((a - b) ** 2))) / size
    if labelled and residuals.get(first, np.inf) < STRIP_RESIDUAL:
        return first
    ranked = sorted(residuals, key=residuals.get)
    if not ranked or residuals[ranked[0]] >= STRIP_RESIDUAL:
        return None
    if len(ranked) > 1 and residuals[ranked[0]] > 0.7 * residuals[ranked[1]]:
        return None  # two leads match alike: which one is not known
    if ranked[0] != first and residuals[ranked[0]] >= OTHER_STRIP_RESIDUAL:
        return None  # another lead than the layout's, on too rough a match to name it
    return ranked[0]
