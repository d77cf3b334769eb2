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
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["faint_joins"]

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
