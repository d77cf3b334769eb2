"""Time along a row from the grid printed under it.

A row's time axis is known at its two ends (t = 0 and 10 s, where its ink starts and stops);
between them it is straight only on a flat page. A phone photo's perspective compresses the
row's far end (a keystone that shortens the page's left edge bends a row's middle by tens of
milliseconds), and the projective map fitted to the rows' baselines cannot see it reliably:
a row's baseline is fitted through four leads' isoelectric lines, whose levels differ, and
its slope, which is all that map has to go on, is off by a millimetre over the row (seed 97
page 54: a clean page bent by 66 ms, every lead read 30-60 ms late; its photo, keystone 1.2 %,
read as flat).

The paper's own ruler is printed under every row: grid lines every millimetre (or 5 mm). Down a
row's band the vertical lines are dark in every pixel row while the trace and the horizontal
lines cover a few, so the band's median darkness per column is the vertical lines alone. Their
positions, numbered along the row (``_lattice``) and fitted by a quadratic (``_fit``), give the
paper millimetre of every column where the fit is tight and spans the row, and so how far each
half second lies from where a straight axis between the row's ends puts it (``row_bend``). A
perspective bends every row of a page alike; the page's bend is its rows' median, so one row
misread does not bend the page (``time_rows_on_grid``). It reaches the clock
(``digitize.page_clock``) and the lead cuts (``Row.x_at``) as the rows' time knots
(``Row.knots``). A flat page's grid gives straight knots: its rows stay straight even where
the projective map fitted to their baselines would bend them (seed 97 page 54, above). Rows
timed by their printed separators keep those; a page without a grid the fit trusts keeps the
straight axes and that map.

Measured (``bench digitize --n 30 --seed 501``, per file, Challenge SNR): clean pages 14
better by > 0.3 dB, 3 worse; scans 18 / 2; photos 27 / 6 (``bench layouts`` seed 97: pages
accepted but misread 4 -> 1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..contract import PAPER_SPEED_MM_S
from ..leads import DURATION_S
from .errors import IntakeError
from .layout import Row

__all__ = ["KNOT_TIMES", "check_row_length", "line_positions", "row_bend", "time_rows_on_grid"]

KNOT_TIMES = np.arange(0.5, DURATION_S, 0.5)  # s: where a row's time knots lie
_MAX_RESIDUAL_PX = 0.35  # a grid line's fitted position is this close to where it was found
_MIN_SPAN = 0.85  # the lines found span this much of the row (a fit extrapolates wildly beyond its lines)
_MAX_SCALE_CHANGE = 0.08  # a millimetre's width along the row within 8 % of the row's mean
_MAX_BEND_S = 0.15  # no perspective a page is read at bends a row further
_DURATION_TOLERANCE = 0.04  # the grid's millimetres between the row's ends: 250 mm within 4 %
_MIN_BEND_S = 0.004  # a grid that bends no point of the row by this much says it is flat
_MAX_LENGTH_ERROR = 0.05  # rows whose ends span more (less) of the grid than 10 s +- 5 %: refused


def line_positions(profile: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Sub-pixel centres of the dark peaks of a column profile (grid lines)."""
    size = max(3, int(round(2 * px_per_mm)) | 1)
    lift = profile - ndimage.median_filter(profile, size=size, mode="nearest")
    strong = lift > max(1.0, 0.35 * float(np.percentile(lift, 98)))
    peak = strong[1:-1] & (lift[1:-1] >= lift[:-2]) & (lift[1:-1] > lift[2:])
    i = np.flatnonzero(peak) + 1
    left, centre, right = lift[i - 1], lift[i], lift[i + 1]
    curvature = left - 2 * centre + right
    offset = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
    return i + np.clip(offset, -0.5, 0.5)


def _lattice(xs: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Number the lines ``xs`` (increasing) along a lattice of about ``period`` px: each
    accepted line's index follows the previous one's by its distance in periods; a peak
    between lines (a trace's remnant) is passed over. ``(indices, positions)``."""
    if xs.size < 2:
        return None
    indices, kept = [0], [xs[0]]
    for x in xs[1:]:
        steps = (x - kept[-1]) / period
        whole = round(steps)
        if whole >= 1 and abs(steps - whole) <= 0.25:
            indices.append(indices[-1] + whole)
            kept.append(x)
    return np.array(indices, dtype=np.float64), np.array(kept)


def _fit(k: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Quadratic x(k) (enough for a perspective a page is read at), refitted without
    outliers; ``None`` unless it is tight."""
    keep = np.ones(k.size, dtype=bool)
    for _ in range(3):
        if keep.sum() < 20:
            return None
        coefficients = np.polyfit(k[keep], x[keep], 2)
        residual = np.abs(np.polyval(coefficients, k) - x)
        keep = residual <= max(0.5, 3.0 * float(np.median(residual[keep])))
    if float(np.sqrt(np.mean(residual[keep] ** 2))) > _MAX_RESIDUAL_PX:
        return None
    return coefficients


class _Reading(NamedTuple):
    """What a row's grid says: the paper seconds between its ends, and its bend
    (``row_bend``; ``None`` unless the seconds are 10 within ``_DURATION_TOLERANCE`` and the
    fit is a perspective's)."""

    duration: float
    bend: np.ndarray | None


def row_bend(grid: np.ndarray, row: Row) -> np.ndarray | None:
    """How far (s) the vertical grid lines in ``row``'s band of ``grid`` (darkness, grid
    included, levelled like the trace mask) put each of ``KNOT_TIMES`` from where a straight
    axis between the row's ends does; ``None`` where the grid does not say."""
    reading = _read_row(grid, row)
    return None if reading is None else reading.bend


def _read_row(grid: np.ndarray, row: Row) -> _Reading | None:
    """``row``'s grid (``_Reading``); ``None`` where no grid is read."""
    width, px_per_mm = row.x_end - row.x_start, row.px_per_mm
    lo, hi = max(0, row.x_start - int(px_per_mm)), min(grid.shape[1], row.x_end + int(px_per_mm) + 1)
    band = grid[row.top : row.bottom, lo:hi]
    if band.shape[0] < 5 or hi - lo < width:
        return None
    xs = line_positions(np.median(band, axis=0).astype(np.float32), px_per_mm) + lo
    if xs.size < 20:
        return None
    # Minor lines (1 mm) or major lines alone (5 mm): the spacing the lines found mostly have.
    spacing = float(np.median(np.diff(xs))) / px_per_mm
    mm = min((1.0, 5.0), key=lambda m: abs(spacing / m - 1))
    if abs(spacing / mm - 1) > 0.15:
        return None
    numbered = _lattice(xs, mm * px_per_mm)
    if numbered is None or numbered[1][-1] - numbered[1][0] < _MIN_SPAN * width:
        return None
    coefficients = _fit(*numbered)
    if coefficients is None:
        return None
    # Paper millimetres (in lattice steps) of every column, by inverting the monotone fit.
    k = np.linspace(numbered[0][0] - 10, numbered[0][-1] + 10, 4096)
    x = np.polyval(coefficients, k)
    if np.any(np.diff(x) <= 0):
        return None
    k_start, k_end = np.interp([row.x_start, row.x_end], x, k)
    duration = float((k_end - k_start) * mm / PAPER_SPEED_MM_S)
    if abs(duration / DURATION_S - 1) > _DURATION_TOLERANCE:
        return _Reading(duration, None)  # the grid and the row's ends disagree: no bend
    on_row = (x >= row.x_start) & (x <= row.x_end)
    scale = np.diff(x[on_row]) / np.diff(k[on_row]) / (mm * px_per_mm)
    if scale.size < 2 or np.max(np.abs(scale - 1)) > _MAX_SCALE_CHANGE:
        return _Reading(duration, None)
    columns = np.interp(k_start + (k_end - k_start) * KNOT_TIMES / DURATION_S, k, x)
    bend = (columns - row.x_start) * DURATION_S / width - KNOT_TIMES
    return _Reading(duration, bend if np.max(np.abs(bend)) <= _MAX_BEND_S else None)


def time_rows_on_grid(grid: np.ndarray, rows: list[Row]) -> tuple[list[str], float | None]:
    """Give ``rows`` the page's bend as time knots: a warning where it bends them, and how
    many seconds of paper the rows span by their grid (the median of two rows read or more).

    A photo's perspective bends every row alike (its far side is compressed all down the
    page), while one row's grid may be misread (a 12x1 row's band is so narrow that its QRS
    complexes shift the lines' centres): the page's bend is the median of its rows', read
    on two rows at least and a third of them. A bend under ``_MIN_BEND_S`` is none: the
    rows are straight, and a projective map fitted to their baselines does not bend them."""
    readings = [r for r in (_read_row(grid, row) for row in rows) if r is not None]
    # One row's grid is not enough to measure the page by (ecg00046's first row said 9.0 s).
    length = float(np.median([r.duration for r in readings])) if len(readings) >= 2 else None
    bends = [r.bend for r in readings if r.bend is not None]
    if len(bends) < max(2, len(rows) / 3):
        return [], length
    bend = np.median(bends, axis=0)
    if np.max(np.abs(bend)) < _MIN_BEND_S:
        bend = np.zeros_like(bend)
    for row in rows:
        columns = row.x_start + (row.x_end - row.x_start) * (KNOT_TIMES + bend) / DURATION_S
        row.knots = tuple((float(t), float(x)) for t, x in zip(KNOT_TIMES, columns, strict=True))
    if not bend.any():
        return [], length
    return [f"{len(rows)} row(s) timed along the grid under them (the page is seen in perspective)"], length


def check_row_length(length: float | None) -> None:
    """Refuse a page whose rows span other than 10 s of the grid printed under them.

    On generator pages read right the grid says 9.97-10.03 s (seed 97, 106 pages; 4 % off
    on one photo whose rows end a little short); an enlarged picture's grid is not
    measured by (ecg00013, a 1024 px screenshot, said 10.4 s). Where something printed at
    the rows' ends is followed as trace (seed 97 page 25: a fold across every row's end,
    10.6-10.8 s, but on one row only), every lead is misplaced in time: a refusal is the
    better answer."""
    if length is not None and abs(length / DURATION_S - 1) > _MAX_LENGTH_ERROR:
        raise IntakeError(
            "no_layout",
            f"the trace rows span {length:.1f} s of the grid printed under them, not {DURATION_S:g} s: "
            "something at the rows' ends (a fold, a mark, a pulse) was read as trace",
        )
