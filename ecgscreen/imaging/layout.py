"""Find the layout of a printed ECG: its trace rows, their time axis and their voltage scale.

Works on the deskewed trace mask, with no knowledge of the printer:

* **Rows.** A trace spends most of its time on the isoelectric line, so the fraction of
  columns with ink near a given height peaks at each row's baseline; text lines cover far
  fewer columns. The number of rows names the layout: 4 = ``3x4+1`` (three rows of four
  leads and a rhythm strip), 6 = ``6x2``, 12 = ``12x1``.
* **Time.** Every standard layout prints 10 s across the row; the row's longest run of inked
  columns is the trace, so its ends are t = 0 s and t = 10 s.
* **Voltage.** The calibration pulse before the trace is 1 mV high. Where it is missing, the
  horizontal scale (25 mm/s) and the standard 10 mm/mV stand in, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.ndimage import maximum_filter1d

from ..contract import GAIN_MM_PER_MV, PAGE_MM, PAPER_SPEED_MM_S
from ..leads import DURATION_S
from .errors import IntakeError

__all__ = ["Row", "PageLayout", "find_layout", "LAYOUT_BY_ROWS"]

LAYOUT_BY_ROWS = {4: "3x4+1", 6: "6x2", 12: "12x1"}


@dataclass
class Row:
    """One printed row: baseline ``y = intercept + slope * x`` (px), trace from x_start to x_end."""

    intercept: float
    slope: float
    top: int  # band of the image that belongs to this row
    bottom: int
    x_start: int
    x_end: int
    px_per_mv: float = 0.0
    calibrated: bool = False
    pulse_ratio: float | None = None  # the pulse's width over 0.2 s of this row's time scale

    def baseline(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * x

    def x_at(self, t: np.ndarray | float) -> np.ndarray | float:
        """Image column of time ``t`` seconds."""
        return self.x_start + (self.x_end - self.x_start) * np.asarray(t) / DURATION_S


@dataclass
class PageLayout:
    layout: str
    rows: list[Row]
    px_per_mm: float
    gain_mm_per_mv: float
    warnings: list[str] = field(default_factory=list)
    regularity: float = 1.0  # 1 = perfectly even row spacing


def _runs(flags: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs of True in a 1-D array, bridging gaps up to ``max_gap``; (start, end) inclusive."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _find_baselines(mask: np.ndarray, px_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidate row baselines (y) and their coverage (fraction of columns inked nearby)."""
    reach = max(1, round(1.0 * px_per_mm))
    near = maximum_filter1d(mask.view(np.uint8), size=2 * reach + 1, axis=0)
    coverage = near.mean(axis=1, dtype=np.float32)
    smooth = np.convolve(coverage, np.ones(3) / 3, mode="same")
    separation = max(2, round(6.0 * px_per_mm))  # rows of a 12x1 page are ~14 mm apart
    peak = (smooth == maximum_filter1d(smooth, size=2 * separation + 1)) & (smooth > 0.3)
    ys = np.flatnonzero(peak)
    if ys.size:  # plateaus give adjacent equal maxima: keep one per plateau
        ys = ys[np.r_[True, np.diff(ys) > separation]]
    return ys, smooth[ys]


def _progressions(ys: np.ndarray, coverage: np.ndarray) -> np.ndarray | None:
    """The evenly spaced run of 4, 6 or 12 of ``ys`` with the most coverage (each member
    within 8 % of the pitch of its place), or ``None``."""
    best, best_score = None, 0.0
    for i in range(ys.size):
        for j in range(i + 1, ys.size):
            for n in LAYOUT_BY_ROWS:
                for steps in range(1, n):
                    pitch = (ys[j] - ys[i]) / steps
                    places = ys[i] + pitch * np.arange(n)
                    distance = np.abs(ys[None, :] - places[:, None])
                    nearest = np.argmin(distance, axis=1)
                    if (distance[np.arange(n), nearest] > 0.08 * pitch).any() or len(
                        set(nearest.tolist())
                    ) < n:
                        continue
                    score = float(coverage[nearest].sum())
                    if score > best_score:
                        best, best_score = ys[nearest], score
    return best


def _select_rows(ys: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """The evenly spaced set of 4, 6 or 12 baselines: all the strong candidates when they are
    one, else the best evenly spaced run among them (a header line or a remnant of the grid
    adds a peak between or beside the rows), else among all candidates."""
    strong = coverage >= 0.5 * coverage.max() if ys.size else np.zeros(0, bool)
    if strong.sum() in LAYOUT_BY_ROWS:
        return ys[strong]
    for keep in (strong, np.ones(ys.size, bool)):
        if keep.sum() > 4 and keep.sum() <= 24:
            found = _progressions(ys[keep], coverage[keep])
            if found is not None:
                return found
    return ys[strong]


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``y = intercept + slope * x`` (closed form)."""
    mx, my = x.mean(), y.mean()
    dx = x - mx
    slope = float(np.dot(dx, y - my) / max(np.dot(dx, dx), 1e-12))
    return slope, float(my - slope * mx)


def _fit_baseline(band: np.ndarray, top: int, y0: float, x0: int, x1: int) -> tuple[float, float]:
    """Robust straight line through the flat (isoelectric) parts of a row's trace."""
    has, centre, extent = _centres(band[:, x0 : x1 + 1])
    flat = has & (extent <= 3)
    if flat.sum() < 20:
        return float(y0), 0.0
    x, y = np.arange(x0, x1 + 1)[flat].astype(float), top + centre[flat]
    keep = np.abs(y - np.median(y)) < 0.1 * band.shape[0]
    for _ in range(2):
        if keep.sum() < 10:
            return float(np.median(y)), 0.0
        slope, intercept = _line(x[keep], y[keep])
        residual = np.abs(y - (intercept + slope * x))
        keep = residual < max(2.0, 2.5 * np.median(residual[keep]))
    return float(intercept), float(slope)


def _centres(sub: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``sub``: has ink, stroke centre row, stroke extent (px)."""
    has = sub.any(axis=0)
    first = np.argmax(sub, axis=0)
    last = sub.shape[0] - 1 - np.argmax(sub[::-1], axis=0)
    return has, (first + last) / 2.0, np.where(has, last - first, 0)


def _pulse_shape(mask: np.ndarray, row: Row, s: int, e: int, pitch: float) -> tuple[np.ndarray, int]:
    """The connected shape standing on ``row``'s baseline in columns ``s..e`` (its calibration
    pulse, if any), and the image row its window starts at.

    The window reaches 1.6 row pitches up: at 10 mm/mV a 12x1 page's pulse (10 mm) is taller
    than half the row pitch (~14 mm), so it cannot be cut at the midline between rows; the
    pulse of the row above stands on its own baseline and is a shape of its own.
    """
    y0 = int(round(row.baseline(np.array([float(e)]))[0]))
    top = max(0, int(y0 - 1.6 * pitch))
    bottom = min(mask.shape[0], int(y0 + 0.4 * pitch) + 1)
    window = mask[top:bottom, s : e + 1]
    # Shapes are joined across one-pixel gaps: a thin stroke drawn between two pixel columns
    # comes out faint and may lose a pixel at a corner, splitting the pulse in two.
    joined = ndimage.binary_dilation(window, structure=np.ones((3, 3), dtype=bool))
    labels, count = ndimage.label(joined, structure=np.ones((3, 3), dtype=int))
    if count == 0:
        return np.zeros_like(window), top
    # The shape that reaches the baseline in the window's rightmost columns (the pulse's foot).
    reach = max(1, int(0.1 * pitch))
    foot = labels[max(0, y0 - top - reach) : y0 - top + reach + 1, -max(2, window.shape[1] // 6) :]
    candidates = np.bincount(foot.ravel(), minlength=count + 1)
    candidates[0] = 0
    if candidates.max() == 0:
        return np.zeros_like(window), top
    return (labels == int(np.argmax(candidates))) & window, top


def _calibrate(
    mask: np.ndarray, row: Row, runs: list[tuple[int, int]], px_per_mm: float, pitch: float
) -> None:
    """Measure the 1 mV calibration pulse in the run just before the trace, if any.

    The pulse is two tall vertical strokes 0.2 s apart; the flat stroke between them is
    1 mV, the flat stroke after it (towards the trace) is the printer's 0 mV line for the
    row. Both are measured as stroke centres, so the pen width cancels out; a lead label
    printed next to the pulse is neither tall nor between the edges, so it is ignored.
    """
    before = [(s, e) for s, e in runs if e < row.x_start and row.x_start - e < 8 * px_per_mm]
    if not before:
        return
    s, e = before[-1]
    shape, top = _pulse_shape(mask, row, s, e, pitch)
    has, centre, extent = _centres(shape)
    if not has.any():
        return
    tall = np.flatnonzero(has & (extent >= 0.6 * extent.max()))
    rise, fall = tall[0], tall[-1]
    expected_width = 0.2 * (row.x_end - row.x_start) / DURATION_S  # the pulse lasts 0.2 s
    flat = has & (extent <= max(3, 0.6 * px_per_mm))
    columns = np.arange(centre.size)
    plateau = flat & (columns > rise) & (columns < fall)
    foot = flat & (columns > fall)
    if fall - rise < 2 * px_per_mm or plateau.sum() < 0.4 * (fall - rise) or not foot.any():
        return  # not a pulse
    row.pulse_ratio = (fall - rise) / expected_width
    if not 0.6 <= row.pulse_ratio <= 1.5:
        return  # a pulse, but not 0.2 s of this row's time: the row is not 10 s (cropped?)
    height = float(np.median(centre[foot]) - np.median(centre[plateau]))
    if height > 2.0 * px_per_mm:  # at least 2 mm/mV
        row.px_per_mv = height
        row.calibrated = True
        # Re-anchor the baseline on the pulse's foot, keeping the slope fitted on the trace.
        foot_x = float(np.mean(columns[foot])) + s
        row.intercept = top + float(np.median(centre[foot])) - row.slope * foot_x


def _agree_on_ends(rows: list[Row]) -> list[str]:
    """Every row of a standard layout starts at t = 0 s and ends at t = 10 s on the same
    vertical lines (slanted only by perspective). A row whose own ends disagree with the
    others' (a faint stretch cut its trace short, a remnant of the grid lengthened it) takes
    them from a line fitted through the rows that agree; with fewer than half agreeing, the
    page is refused."""
    widths = np.array([r.x_end - r.x_start for r in rows], dtype=float)
    agree = np.abs(widths / np.median(widths) - 1) <= 0.03
    if agree.all():
        return []
    if agree.sum() < max(2, len(rows) / 2):
        raise IntakeError(
            "no_layout", "trace rows differ in length: part of the tracing is missing or cropped"
        )
    y = np.array([r.baseline(np.array([float(r.x_start)]))[0] for r in rows])
    fits = [
        _line(y[agree], np.array([getattr(r, end) for r in rows], dtype=float)[agree])
        for end in ("x_start", "x_end")
    ]
    for row, ok, y_row in zip(rows, agree, y, strict=True):
        if not ok:
            row.x_start, row.x_end = (int(round(b + a * y_row)) for a, b in fits)
    return [f"{int((~agree).sum())} row(s) partly missing: their ends taken from the other rows"]


def find_layout(mask: np.ndarray) -> PageLayout:
    """The layout of the deskewed trace ``mask``, or ``IntakeError('no_layout')``."""
    h, w = mask.shape
    guess_px_per_mm = w / PAGE_MM[0]
    ys, coverage = _find_baselines(mask, guess_px_per_mm)
    rows_y = _select_rows(ys, coverage)
    n = rows_y.size
    if n not in LAYOUT_BY_ROWS:
        raise IntakeError(
            "no_layout",
            f"found {n} trace rows; a 12-lead printout has 4 (3x4 + rhythm strip), 6 (6x2) or 12 (12x1). "
            "Is this an ECG, and is the whole tracing in the picture?",
        )
    layout = LAYOUT_BY_ROWS[n]
    pitch = np.diff(rows_y)
    regularity = float(1.0 - min(1.0, pitch.std() / pitch.mean()))
    if regularity < 0.8:
        raise IntakeError(
            "no_layout", f"the {n} rows found are not evenly spaced: not a recognised ECG layout"
        )
    mean_pitch = float(pitch.mean())
    edges = np.r_[rows_y[0] - 0.6 * mean_pitch, (rows_y[:-1] + rows_y[1:]) / 2, rows_y[-1] + 0.5 * mean_pitch]
    edges = np.clip(np.round(edges), 0, h).astype(int)

    rows: list[Row] = []
    for i, y in enumerate(rows_y):
        top, bottom = edges[i], edges[i + 1]
        band = mask[top:bottom]
        # Columns are judged from the previous to the next row's baseline: a wide S wave
        # that leaves the band for a few columns must not split the trace in two, and the
        # header above the first row must not join the calibration pulse to the trace.
        reach = mask[int(rows_y[i - 1]) if i else top : int(rows_y[i + 1]) if i + 1 < n else bottom]
        runs = _runs(reach.any(axis=0), max_gap=max(1, round(0.75 * guess_px_per_mm)))
        if not runs:
            raise IntakeError("no_layout", f"row {i + 1} has no trace")
        x_start, x_end = max(runs, key=lambda r: r[1] - r[0])
        intercept, slope = _fit_baseline(band, top, y, x_start, x_end)
        row = Row(intercept, slope, top, bottom, x_start, x_end)
        rows.append(row)
        _calibrate(mask, row, runs, guess_px_per_mm, mean_pitch)

    ratios = [r.pulse_ratio for r in rows if r.pulse_ratio is not None]
    if ratios and not 0.6 <= float(np.median(ratios)) <= 1.5:
        raise IntakeError(
            "no_layout",
            f"the calibration pulses are {float(np.median(ratios)):.1f} times as wide as 0.2 s of the trace: "
            "the rows do not hold 10 s each. Is part of the tracing cut off?",
        )
    warnings = _agree_on_ends(rows)
    widths = np.array([r.x_end - r.x_start for r in rows], dtype=float)
    px_per_mm = float(np.median(widths)) / (DURATION_S * PAPER_SPEED_MM_S)
    calibrated = [r.px_per_mv for r in rows if r.calibrated]
    if calibrated:
        px_per_mv = float(np.median(calibrated))
    else:
        px_per_mv = GAIN_MM_PER_MV * px_per_mm
        warnings.append(f"no calibration pulse found; assumed the standard {GAIN_MM_PER_MV:g} mm/mV")
    for row in rows:
        row.px_per_mv = px_per_mv
    if calibrated and not all(row.calibrated for row in rows):
        warnings.append("rows without a calibration pulse: their 0 mV line is estimated from the trace")
    gain = px_per_mv / px_per_mm
    return PageLayout(layout, rows, px_per_mm, gain, warnings, regularity)
