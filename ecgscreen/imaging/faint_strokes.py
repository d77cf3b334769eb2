"""Steep strokes a thin pen leaves too faint for the ink threshold.

In a small scan or export a pen about a pixel wide draws its flat stretches dark, but its
steep strokes (a QRS's up- and downstrokes, a pulse's edges) cross each pixel row in a single
column, resampled and JPEG-blurred to the lightness of a grid line. The ink threshold keeps the
flat stretches and loses the strokes, so the trace falls apart: an R wave's top with its
elevated ST segment floats above the baseline as a shape of its own, touches no baseline
corridor, and is dropped with the lead labels (ecg00013, a 1024 px scan: lead V4 lost half
its span that way).

Such a stroke is still darker than the paper once the page's straight vertical lines (the
grid, which runs on for centimetres) are taken out: a piece of faint pixels, joined up and
down (straight or diagonally, never sideways), that lies under one shape of ink and over
another. ``faint_joins`` finds the shapes such strokes join; ``digitize.assign_traces`` lets a
floating shape of the trace's size join the trace that way. The strokes only say which shapes
belong together: their pixels are not added to the trace, so nothing read before moves.
A stroke over 12 mm straight up is taken for a grid line and joins nothing.

In a smaller picture still, a spike's strokes fade to paper-white between its tip and the
baseline (ecg00019, a 640 px scan): ``spike_tips`` pairs such a tip, drawn like one and
standing just over its row's trace, with that trace.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["faint_joins", "spike_tips"]

_TIP_GAP_MM = 5.0  # how far a spike's tip may float over (under) its trace
_TIP_MM = 2.0  # a tip at least this tall and three times as tall as wide: a spike's, not a glyph
_STRAIGHT_MM = 12.0  # a vertical run this long is a grid line, never a stroke of the trace
_CONTRAST = 13  # /255 darkness over the straight lines: a stroke, not the paper's noise
# Faint pixels join up and down, straight or diagonally, never sideways: a steep stroke
# drawn slanted is one piece, a faint horizontal line is not.
_STEEP = np.array([[1, 1, 1], [0, 1, 0], [1, 1, 1]])


def faint_joins(darkness: np.ndarray, shapes: np.ndarray, px_per_mm: float) -> np.ndarray:
    """(N, 3): per steep faint stroke and pair of ``shapes`` labels it joins (int, 0 = no ink,
    same shape as ``darkness``, 0 paper .. 1 black), the shape it lies right under, the shape
    it lies right over, and the stroke's own number."""
    dark = np.round(np.clip(darkness, 0.0, 1.0) * 255).astype(np.uint8)
    run = max(3, int(round(_STRAIGHT_MM * px_per_mm)) | 1)
    straight = ndimage.maximum_filter1d(ndimage.minimum_filter1d(dark, run, axis=0), run, axis=0)
    faint = (dark.astype(np.int16) - straight > _CONTRAST) & (shapes == 0)
    faint[0] = faint[-1] = False
    strokes, _ = ndimage.label(faint, structure=_STEEP)
    ys, xs = np.nonzero(strokes)
    stroke = strokes[ys, xs]
    over, under = shapes[ys - 1, xs], shapes[ys + 1, xs]  # the shape above a faint pixel, below it
    tops = np.unique(np.c_[stroke, over][over > 0], axis=0)
    bottoms = np.unique(np.c_[stroke, under][under > 0], axis=0)
    ends: dict[int, list[int]] = {}
    for k, b in bottoms:
        ends.setdefault(int(k), []).append(int(b))
    joins = [(int(a), b, int(k)) for k, a in tops for b in ends.get(int(k), ()) if a != b]
    return np.array(joins, dtype=np.int64).reshape(-1, 3)


def spike_tips(
    shapes: np.ndarray,
    boxes: list,
    floating: np.ndarray,
    home: np.ndarray,
    rows: list,
    px_per_mm: float,
    marked: list[tuple[float, float]],
) -> np.ndarray:
    """(N, 2): ``(tip, trace)`` label pairs of ``shapes`` (``boxes``: their
    ``ndimage.find_objects``): a floating shape (per label, bool) drawn like a spike's tip
    (``_TIP_MM`` tall or more, a third as wide), standing within ``_TIP_GAP_MM`` straight
    over its row's trace (hanging under it, below the baseline), and the trace shape it
    stands on, whose ``home`` row (per label) is that row. Tips whose middle column lies in
    ``marked`` (a lead change's tick and label, a row's pulse) are left out. ``rows``: ``layout.Row``s, for their baselines.

    In a 640 px scan an R wave's strokes, a pixel wide, fade to paper-white between its tip
    and the baseline (ecg00019), so not even a faint stroke joins them."""
    h = shapes.shape[0]
    gap = max(2, int(round(_TIP_GAP_MM * px_per_mm)))
    beside = max(1, int(round(0.5 * px_per_mm)))  # the stroke leaves the baseline a column or two aside
    found = []
    for index, box in enumerate(boxes, start=1):
        if box is None or not floating[index]:
            continue
        top, bottom, left, right = box[0].start, box[0].stop, box[1].start, box[1].stop
        middle = (left + right) / 2
        # (``shapes`` are the ink grown by a pixel each way, as ``digitize`` groups it)
        if bottom - top < _TIP_MM * px_per_mm or 3 * (right - left - 2) > bottom - top:
            continue
        if any(lo <= middle <= hi for lo, hi in marked):
            continue
        baselines = np.array([row.baseline(np.array([middle]))[0] for row in rows])
        row = int(np.argmin(np.abs(baselines - (top + bottom) / 2)))
        upward = (top + bottom) / 2 < baselines[row]
        tip = shapes[box] == index
        columns = np.flatnonzero(tip[-1] if upward else tip[0]) + left  # the end facing the trace
        lo, hi = max(0, columns.min() - beside), columns.max() + beside + 1
        window = (
            shapes[bottom : min(h, bottom + gap), lo:hi] if upward else shapes[max(0, top - gap) : top, lo:hi]
        )
        hit = window[(window > 0) & (window != index)]
        if hit.size:
            trace = int(np.bincount(hit).argmax())
            if not floating[trace] and home[trace] == row:
                found.append((index, trace))
    return np.array(found, dtype=np.int64).reshape(-1, 2)
