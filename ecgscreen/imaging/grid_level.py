"""The rows' 0 mV line along the grid printed under them.

A row's baseline is a straight line: fitted through its trace's flat stretches and anchored on
its calibration pulse's foot. A phone photo's paper is not flat: curled, it bends every row
by millimetres (seed 501, photos: 4.6-7.7 px, 0.12-0.18 mV, over a row at 10 mm/mV), and a
straight line through the pulse's foot then puts each lead's 0 mV 0.1-0.2 mV off; a
perspective does not bend straight lines, a curl does. Fitting a curve to the trace itself
would take a lead's ST elevation for the paper's bend.

The grid's horizontal lines are straight on the paper, so their bend in the picture is the
paper's. Along the row, in windows a few millimetres wide, the band's median darkness per
pixel row (with the trace's own ink left out) peaks at the horizontal lines; their positions
modulo the line spacing give the lattice's vertical phase, and its shift from window to
window (unwrapped) is how far the paper rises or falls there. A quadratic through the shifts
(tight, spanning the row, its tilt the trace's within a millimetre) gives the row's
curvature. A curl bends rows by different depths (the ones seen more obliquely more), so
each row keeps its own; a row whose grid is not read takes the median of the others' (two
read at least, a third of the page, or none is bent). Only the curvature is added to the
row's baseline (``Row.bend``), with no slope and no offset of its own over the row, and it
is kept at zero where the baseline was anchored on a pulse's foot: the trace's fitted slope
and the pulse's foot stay as they were.

On flat pictures the rows' grids read 0.0-0.1 px of bend (the dev set's screenshots and
renders); real phone photos 1-4 px. Measured (``bench digitize --n 30 --seed 501``, per
file, Challenge SNR): photos median 1.0 -> 2.5 dB, 28 better by > 0.3 dB and none worse;
clean pages and scans unchanged (their rows are flat).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .grid_clock import line_positions
from .layout import Row

__all__ = ["level_rows_on_grid", "row_curvature"]

_WINDOW_MM = 6.0  # the width of the windows the lattice's phase is read in
_MIN_WINDOWS = 0.8  # the share of a row's windows whose phase must be read
_MIN_COHERENCE = 0.5  # the lines of a window agree on the phase (|mean of unit phasors|)
_MAX_RESIDUAL_PX = 0.35  # the quadratic through the phases is this tight
_MAX_SLOPE_DISAGREEMENT_MM = 1.0  # the grid's tilt over the row against the trace's line
_MIN_BEND_PX = 0.5  # a bend under this over the row is none
_MAX_BEND_MM = 4.0  # no curl a page is read at bends a row further


def _phase(ys: np.ndarray, period: float) -> float | None:
    """The lattice's vertical offset (px, modulo ``period``) from the lines found at ``ys``."""
    if ys.size < 3:
        return None
    mean = np.mean(np.exp(2j * np.pi * ys / period))
    if abs(mean) < _MIN_COHERENCE:
        return None
    return float(np.angle(mean)) * period / (2 * np.pi)


def _fit(x: np.ndarray, shift: np.ndarray, least: int) -> np.ndarray | None:
    """Quadratic shift(x), refitted without outliers (a window whose lines were a label's
    strokes); ``None`` unless ``least`` windows keep to it tightly."""
    keep = np.ones(x.size, dtype=bool)
    for _ in range(3):
        if keep.sum() < max(least, 5):
            return None
        coefficients = np.polyfit(x[keep], shift[keep], 2)
        residual = np.abs(np.polyval(coefficients, x) - shift)
        keep = residual <= max(0.5, 3.0 * float(np.median(residual[keep])))
    if keep.sum() < least or float(np.sqrt(np.mean(residual[keep] ** 2))) > _MAX_RESIDUAL_PX:
        return None
    return coefficients


def row_curvature(grid: np.ndarray, trace: np.ndarray, row: Row) -> float | None:
    """The second-order coefficient (px per px^2) of the horizontal grid lines' bend in
    ``row``'s band of ``grid`` (darkness, grid included; ``trace``: the trace mask, left
    out); ``None`` where the grid does not say."""
    width, px_per_mm = row.x_end - row.x_start, row.px_per_mm
    band = grid[row.top : row.bottom].astype(np.float32)
    if band.shape[0] < 4 * px_per_mm or width < 50 * px_per_mm:
        return None
    band = np.where(ndimage.binary_dilation(trace[row.top : row.bottom]), 0.0, band)
    window = max(8, int(round(_WINDOW_MM * px_per_mm)))
    # From the pulse's foot where the baseline is pinned there (it lies before the trace):
    # the fit is read there, not extrapolated to it.
    lo = row.x_start if row.anchor_x is None else max(0, min(row.x_start, int(row.anchor_x) - window // 2))
    starts = np.arange(lo, row.x_end - window + 1, window)
    windows = band[:, lo : lo + starts.size * window].reshape(band.shape[0], starts.size, window)
    lines = [line_positions(profile, px_per_mm) for profile in np.median(windows, axis=2).T]
    # The lines lie on a lattice of 1 mm (major lines alone on every fifth step, and a faint
    # minor line missed here and there): its period in the picture, from the gaps between
    # lines found a whole number of millimetres apart.
    gaps = np.concatenate([np.diff(ys) for ys in lines])
    steps = np.round(gaps / px_per_mm)
    whole = (steps >= 1) & (np.abs(gaps / np.maximum(steps, 1) / px_per_mm - 1) <= 0.2)
    if whole.sum() < 10:
        return None
    period = float(np.median(gaps[whole] / steps[whole]))
    phases = [_phase(ys, period) for ys in lines]
    read = np.array([p is not None for p in phases])
    if read.mean() < _MIN_WINDOWS or not (read[0] or read[1]) or not (read[-1] or read[-2]):
        return None
    x = starts[read] + window / 2 - (row.x_start + row.x_end) / 2
    shift = (
        np.unwrap(np.array([p for p in phases if p is not None]) * 2 * np.pi / period) * period / (2 * np.pi)
    )
    coefficients = _fit(x, shift, int(np.ceil(_MIN_WINDOWS * read.size)))
    if coefficients is None:
        return None
    if abs(coefficients[1] - row.slope) * width > _MAX_SLOPE_DISAGREEMENT_MM * px_per_mm:
        return None  # the phases were unwrapped wrong, or the lines are not the grid's
    return float(coefficients[0])


def level_rows_on_grid(grid: np.ndarray, trace: np.ndarray, rows: list[Row]) -> list[str]:
    """Give ``rows`` the curvature of the grid under them (``Row.bend``), where it shows the
    paper bent; a warning where it does. The grid is trusted on two rows read at least, a
    third of the page (one row's lines alone may be something else's); a row whose grid is
    not read then takes the median of the others'."""
    curvatures = [row_curvature(grid, trace, row) for row in rows]
    read = [c for c in curvatures if c is not None]
    if len(read) < max(2, len(rows) / 3):
        return []
    fallback = float(np.median(read))
    bent = 0
    for row, curvature in zip(rows, curvatures, strict=True):
        curvature = fallback if curvature is None else curvature
        width = row.x_end - row.x_start
        depth = abs(curvature) * width**2 / 4  # the bend's height over the row, end to middle
        if depth < _MIN_BEND_PX or depth > _MAX_BEND_MM * row.px_per_mm:
            continue
        middle = (row.x_start + row.x_end) / 2
        # c (x - m)^2 less its mean over the row (w^2 / 12): no offset nor slope of its own.
        bend = np.array([curvature, -2 * curvature * middle, curvature * (middle**2 - width**2 / 12)])
        if row.anchor_x is not None:  # the pulse's foot stays where it was measured
            bend[2] -= float(np.polyval(bend, row.anchor_x))
        row.bend = bend
        bent += 1
    return [f"{bent} row(s) levelled along the grid under them (the paper is bent)"] if bent else []
