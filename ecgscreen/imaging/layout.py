"""Find the layout of a printed ECG: its trace rows, their time axis and their voltage scale.

Works on the deskewed trace mask, with no knowledge of the printer:

* **Rows.** A trace spends most of its time on the isoelectric line, so the fraction of
  columns with ink near a given height peaks at each row's baseline; text lines cover far
  fewer columns. A page is a block of 3, 6 or 12 evenly spaced rows of leads and up to three
  rhythm strips below it (often a little closer or further apart); the shape whose rows
  cover the most is the page's, so a header, a QR code or a remnant of the grid that is
  not at the rows' pitch is left out, and a thin frame around the page is removed first.
* **Layout.** The shape names it (3 rows: ``3x4``; 3 + 1, 2 or 3 strips: ``3x4+1/2/3``;
  6: ``6x2``; 6 + 1: ``6x2+1``; 12: ``12x1``), except six even rows, which are a 6x2 page or
  a 3x4 page with three strips: ``strips`` tells them apart, and names each strip's lead,
  by which window of the rows above it repeats. More rows than a shape explains is a layout
  this reader does not support (``unsupported_layout``).
* **Time.** Every standard layout prints 10 s across the row; the row's longest run of inked
  columns is the trace, so its ends are t = 0 s and t = 10 s. Where the page prints dashed or
  dotted lines at the lead changes, they place the rows in time instead (``separators``).
* **Voltage.** The calibration pulse before the trace is 1 mV high. Where it is missing, the
  horizontal scale (25 mm/s) and the standard 10 mm/mV stand in, with a warning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from ..contract import GAIN_MM_PER_MV, PAGE_MM, PAPER_SPEED_MM_S
from ..leads import DURATION_S, RHYTHM_LEADS, layout_rows
from . import separators, strips
from .errors import IntakeError

__all__ = ["Row", "PageLayout", "find_layout", "find_baselines", "piecewise", "LAYOUT_BY_SHAPE"]

# (rows of leads, rhythm strips below them) -> layout
LAYOUT_BY_SHAPE: dict[tuple[int, int], str] = {
    (3, 0): "3x4", (3, 1): "3x4+1", (3, 2): "3x4+2", (3, 3): "3x4+3",
    (6, 0): "6x2", (6, 1): "6x2+1", (12, 0): "12x1",
}  # fmt: skip
_MAX_STRIPS = {3: 3, 6: 1, 12: 0}
_STRIP_SPACING = (0.5, 1.3)  # a strip's distance from the row above, in row pitches
# The leads carts print as rhythm strips: a label is read as one of them (a damaged label of
# V5 must not make the strip V4).
_STRIP_LEADS = ("II", "V1", "V5")

# The gains carts print at (mm/mV). A measured pulse is one of them, give or take what a photo's
# perspective and the reading's pixels make of it: a clean 12x1 page at 10 mm/mV had one row's
# "pulse" measured at 3.3 mm/mV and the whole page read three times too large. (2.5 mm/mV,
# rare, is left out: a label's stroke at a row's start measured 2.75.)
CART_GAINS_MM_PER_MV = (5.0, 10.0, 20.0)
GAIN_TOLERANCE = 0.22
# A pulse's width over 0.2 s of its row: most carts print a 0.2 s pulse, some 0.1 s (ecg00048);
# a row of 10 s holds either, and a row cut short (or a pulse misread) is far outside.
MIN_PULSE_RATIO = 0.4
# How far (mm) a pulse's foot may lie from the line fitted along its row's trace and still be
# the row's 0 mV (``_measure_first_pulse``). On the generator's pages (``bench digitize --n
# 16 --seed 501``, Challenge SNR, against always taking the foot): photos 15 files of 46
# better by > 0.3 dB, 1 worse (scans 1 / 0, clean pages unchanged); the real pictures' feet
# lie 0-1.4 mm off; a flat render's 0.4-1.1 mm (its recording's own offset, maybe: seven
# of its eight rows within 1 mm keep their foot).
FOOT_AGREEMENT_MM = 1.0


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
    # (t s, x px) of the lead changes a printed separator marks (``separators``): the row's
    # time axis runs through them, piecewise between its ends.
    knots: tuple[tuple[float, float], ...] = ()
    # Image columns (at the row's middle) where a printed separator line crosses the row.
    separators: tuple[float, ...] = ()
    # Where the baseline was anchored (the pulse's foot, image column), if it was.
    anchor_x: float | None = None
    # The paper's bend under the row (``grid_level``): a polynomial in x added to the line.
    bend: np.ndarray | None = None

    @property
    def px_per_mm(self) -> float:
        """The row's own horizontal scale: its 10 s of trace are 250 mm of paper."""
        return (self.x_end - self.x_start) / (DURATION_S * PAPER_SPEED_MM_S)

    def baseline(self, x: np.ndarray) -> np.ndarray:
        line = self.intercept + self.slope * x
        return line if self.bend is None else line + np.polyval(self.bend, x)

    def x_at(self, t: np.ndarray | float) -> np.ndarray | float:
        """Image column of time ``t`` seconds."""
        if not self.knots:
            return self.x_start + (self.x_end - self.x_start) * np.asarray(t) / DURATION_S
        times, xs = self.time_knots()
        return piecewise(t, times, xs)

    def time_knots(self) -> tuple[np.ndarray, np.ndarray]:
        """The row's time axis as (times s, image columns): its ends and its knots."""
        times = np.array([0.0, *(t for t, _ in self.knots), DURATION_S])
        return times, np.array([self.x_start, *(x for _, x in self.knots), self.x_end], dtype=np.float64)


def piecewise(v: np.ndarray | float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``v`` mapped from the increasing knots ``a`` to ``b``, linearly between them and by the
    end pieces beyond them (``np.interp`` would clamp there)."""
    v = np.asarray(v, dtype=np.float64)
    i = np.clip(np.searchsorted(a, v) - 1, 0, a.size - 2)
    return b[i] + (b[i + 1] - b[i]) * (v - a[i]) / (a[i + 1] - a[i])


@dataclass
class PageLayout:
    layout: str
    rows: list[Row]
    px_per_mm: float
    gain_mm_per_mv: float
    warnings: list[str] = field(default_factory=list)
    regularity: float = 1.0  # 1 = perfectly even row spacing
    rhythm_leads: tuple[str, ...] = ()  # the leads of the rhythm strips, top to bottom
    # Per strip: its lead is the layout's standard one, assumed (its label was not read).
    rhythm_assumed: tuple[bool, ...] = ()

    def is_strip(self, row: int) -> bool:
        """Whether row ``row`` is a full-width rhythm strip."""
        return row >= len(self.rows) - len(self.rhythm_leads)

    def assumed_strip(self, row: int) -> bool:
        """Whether row ``row`` is a rhythm strip whose lead was only assumed: it may be
        another lead's trace (an unlabelled V1 or V5 strip), so it replaces no lead until
        its trace says which it is (``strips.identify_strip``)."""
        strip = row - (len(self.rows) - len(self.rhythm_leads))
        return 0 <= strip < len(self.rhythm_assumed) and self.rhythm_assumed[strip]

    def settle_strip(self, strip: int, lead: str | None) -> None:
        """Record what strip ``strip``'s trace showed (``lead``, or ``None``: no lead it
        could be matches) in place of the lead its layout assumed."""
        standard = self.rhythm_leads[strip]
        assumed = f"rhythm strip lead assumed {standard}: its label was not read, so the strip is not used"
        if lead is None:
            return  # the warning stands: the strip is not used
        if assumed in self.warnings:
            self.warnings.remove(assumed)
        if lead != standard:
            self.warnings.append(
                f"rhythm strip read as {lead} (its trace matches {lead}'s, not {standard}'s)"
            )
        leads = list(self.rhythm_leads)
        leads[strip] = lead
        self.rhythm_leads = tuple(leads)


def _runs(flags: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs of True in a 1-D array, bridging gaps up to ``max_gap``; (start, end) inclusive."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _without_specks(mask: np.ndarray, px_per_mm: float, pieces: tuple[np.ndarray, list]) -> np.ndarray:
    """``mask`` less its specks (pieces within half a millimetre each way): the dots of a
    dotted grid that survive the threshold lie a millimetre apart, close enough to join into
    one run of columns that starts a row at the picture's edge and swallows its pulse.
    ``pieces``: ``mask``'s 8-connected pieces and their boxes."""
    labels, boxes = pieces
    if not boxes:
        return mask
    speck = max(1, int(0.5 * px_per_mm))
    small = np.zeros(len(boxes) + 1, dtype=bool)
    for index, box in enumerate(boxes, start=1):
        small[index] = box[0].stop - box[0].start <= speck and box[1].stop - box[1].start <= speck
    return mask & ~small[labels]


def find_baselines(mask: np.ndarray, px_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
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


def _trace_like_rows(mask: np.ndarray, ys: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Which candidate rows are drawn by a thin line: a trace spends most columns on its
    baseline, one pen wide, where a line of text is a glyph's height tall in most of them (a
    header line can sit a row's pitch above the first row, and cover as much)."""
    reach = round(2.5 * px_per_mm)
    heights = np.zeros(ys.size)
    for k, y in enumerate(ys):
        band = mask[max(0, y - reach) : y + reach + 1]
        has = band.any(axis=0)
        if has.sum() < 10:
            continue
        first = np.argmax(band, axis=0)[has]
        last = band.shape[0] - 1 - np.argmax(band[::-1], axis=0)[has]
        heights[k] = float(np.median(last - first))
    # A blurred photo thickens every stroke: thin is against the page's own rows too.
    thin = max(1.5 * px_per_mm, 1.3 * float(np.median(heights))) if ys.size else 0.0
    return heights <= thin


def _without_frame(mask: np.ndarray) -> np.ndarray:
    """``mask`` less straight lines over half the page's width or height (a frame drawn
    around a rendered page, a page edge): no trace runs straight that far."""
    h, w = mask.shape
    ink = mask.view(np.uint8)
    frame = np.zeros_like(mask)
    for axis, length in ((1, w // 2), (0, h // 2)):
        # Only lines (rows or columns) holding at least half that much ink can hold such a run,
        # even mirrored at the picture's edge (the filters' border mode): open those alone.
        lines = np.flatnonzero(np.count_nonzero(mask, axis=axis) >= length // 2)  # (PIL's bools hold 255)
        if lines.size == 0:
            continue
        part = ink[lines] if axis == 1 else ink[:, lines]
        opened = maximum_filter1d(minimum_filter1d(part, length, axis=axis), length, axis=axis).astype(bool)
        if axis == 1:
            frame[lines] |= opened
        else:
            frame[:, lines] |= opened
    return mask & ~frame if frame.any() else mask


@dataclass
class _Shape:
    """Candidate rows read as a block of evenly spaced rows of leads and strips below it."""

    members: list[int]  # indices into the candidates, top to bottom
    block: int  # how many of them are rows of leads
    pitch: float
    score: float


def _strips_below(
    ys: np.ndarray, coverage: np.ndarray, last: int, pitch: float, room: int, floor: float
) -> list[int]:
    """Rhythm strips below candidate ``last``: each the strongest candidate 0.5-1.3 pitches
    below the one above it, covering at least ``floor``; at most ``room``."""
    found: list[int] = []
    while len(found) < room:
        gap = ys - ys[last]
        near = np.flatnonzero(
            (gap >= _STRIP_SPACING[0] * pitch) & (gap <= _STRIP_SPACING[1] * pitch) & (coverage >= floor)
        )
        if near.size == 0:
            break
        last = int(near[np.argmax(coverage[near])])
        found.append(last)
    return found


def _best_shape(ys: np.ndarray, coverage: np.ndarray) -> _Shape | None:
    """The block of 3, 6 or 12 evenly spaced candidates (each within 10-15 % of the pitch of
    its place) with the strips below it that covers the most, or ``None``. Rows are sought among
    the strong candidates (half the best coverage: a line of text covers less), then among
    all (a faint row)."""
    strong = np.flatnonzero(coverage >= 0.5 * coverage.max()) if ys.size else np.zeros(0, int)
    for keep in (strong, np.arange(ys.size)):
        shape = _best_shape_of(ys[keep], coverage[keep])
        if shape is not None:
            shape.members = keep[shape.members].tolist()
            return shape
    return None


def _best_shape_of(ys: np.ndarray, coverage: np.ndarray) -> _Shape | None:
    best: _Shape | None = None
    for i in range(ys.size):
        for j in range(i + 1, ys.size):
            for n in _MAX_STRIPS:
                for pitch, nearest in _even_places(ys, i, j, n):
                    # Even: within 10 % of the pitch of the straight line fitted through them
                    # (15 % for twelve rows, whose tall complexes cross into their neighbours
                    # and blur where each baseline lies).
                    pitch, start = _line(np.arange(n, dtype=float), ys[nearest].astype(float))
                    tolerance = 0.15 if n == 12 else 0.1
                    if np.abs(ys[nearest] - (start + pitch * np.arange(n))).max() > tolerance * pitch:
                        continue
                    # Rows of trace cover alike; a grid remnant or a line of text covers less.
                    floor = 0.7 * float(np.median(coverage[nearest]))
                    if coverage[nearest].min() < floor:
                        continue
                    below = _strips_below(ys, coverage, int(nearest[-1]), pitch, _MAX_STRIPS[n], floor)
                    members = nearest.tolist() + below
                    score = float(coverage[members].sum())
                    # Six even rows tie with three and three strips: the block is kept whole
                    # and ``_name_layout`` decides.
                    if (
                        best is None
                        or score > best.score + 1e-9
                        or (score > best.score - 1e-9 and n > best.block)
                    ):
                        best = _Shape(members, n, float(pitch), score)
    return best


def _even_places(ys: np.ndarray, i: int, j: int, n: int) -> list[tuple[float, np.ndarray]]:
    """The ways ``n`` evenly spaced places starting at candidate ``i`` and passing through
    ``j`` (the ``steps``-th place, 1 <= steps < n) each find a candidate of their own within
    20 % of the pitch: (pitch, those candidates' indices). ``ys`` is sorted; every ``steps``
    is judged at once (this search is most of the layout's time on a vector PDF)."""
    pitch = (ys[j] - ys[i]) / np.arange(1, n)
    places = ys[i] + pitch[:, None] * np.arange(n)
    right = np.clip(np.searchsorted(ys, places), 1, ys.size - 1)
    left = right - 1
    nearest = np.where(places - ys[left] <= ys[right] - places, left, right)  # ties: the upper row first
    near = (np.abs(ys[nearest] - places) <= 0.2 * pitch[:, None]).all(axis=1)
    distinct = (np.diff(nearest, axis=1) > 0).all(axis=1)
    return [(float(pitch[k]), nearest[k]) for k in np.flatnonzero(near & distinct)]


def _unexplained(ys: np.ndarray, coverage: np.ndarray, shape: _Shape) -> np.ndarray:
    """Candidates covering like the shape's rows that it leaves out (more rows of trace than
    it has): among its rows, or below them where it has all the strips its block allows.
    Headers above the rows, and footers or a page edge below a shape with room for another
    strip (it would have been one), are not counted."""
    members = ys[shape.members]
    strong = coverage >= 0.7 * float(np.median(coverage[shape.members[: shape.block]]))
    apart = np.abs(ys[:, None] - members[None, :]).min(axis=1) >= 0.45 * shape.pitch
    among = (ys > members[0]) & (ys < members[-1])
    full = len(shape.members) - shape.block == _MAX_STRIPS[shape.block]
    below = full & (ys > members[-1]) & (ys <= members[-1] + _STRIP_SPACING[1] * shape.pitch)
    return np.flatnonzero(strong & apart & (among | below))


def _trace_run(runs: list[tuple[int, int]], px_per_mm: float) -> tuple[int, int]:
    """The trace's columns among a row's runs of ink: the longest run, joined to the runs
    beside it over gaps up to 3 mm where they last over a second (some carts leave a gap at
    each lead change; the calibration pulse, a third of a second with its feet, stays out)."""
    k = max(range(len(runs)), key=lambda i: runs[i][1] - runs[i][0])
    lo = hi = k
    gap, long = 3.0 * px_per_mm, 1.0 * PAPER_SPEED_MM_S * px_per_mm
    while lo > 0 and runs[lo][0] - runs[lo - 1][1] <= gap and runs[lo - 1][1] - runs[lo - 1][0] >= long:
        lo -= 1
    while (
        hi + 1 < len(runs)
        and runs[hi + 1][0] - runs[hi][1] <= gap
        and runs[hi + 1][1] - runs[hi + 1][0] >= long
    ):
        hi += 1
    return runs[lo][0], runs[hi][1]


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``y = intercept + slope * x`` (closed form)."""
    mx, my = x.mean(), y.mean()
    dx = x - mx
    slope = float(np.dot(dx, y - my) / max(np.dot(dx, dx), 1e-12))
    return slope, float(my - slope * mx)


def _fit_baseline(
    band: np.ndarray, top: int, y0: float, x0: int, x1: int, thin: float = 3
) -> tuple[float, float]:
    """Robust straight line through the flat (isoelectric) parts of a row's trace: the
    columns whose ink spans at most ``thin`` px; ``(y0, 0)`` where too few do."""
    has, centre, extent = _centres(band[:, x0 : x1 + 1])
    flat = has & (extent <= thin)
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


def _pulse_shapes(
    mask: np.ndarray, row: Row, s: int, e: int, pitch: float, foot_right: bool = True
) -> tuple[list[np.ndarray], int]:
    """The connected shape standing on ``row``'s baseline in columns ``s..e`` (its calibration
    pulse, if any), as one or two readings of its gaps (below), and the image row its
    window starts at. ``foot_right``: the shape is the
    one that reaches the baseline in the window's rightmost columns (a pulse before the
    trace, or joined to its start); else in its leftmost (a pulse after the trace).

    The window reaches 1.6 row pitches up: at 10 mm/mV a 12x1 page's pulse (10 mm) is taller
    than half the row pitch (~14 mm), so it cannot be cut at the midline between rows; the
    pulse of the row above stands on its own baseline and is a shape of its own.
    """
    y0 = int(round(row.baseline(np.array([float(e if foot_right else s)]))[0]))
    top = max(0, int(y0 - 1.6 * pitch))
    bottom = min(mask.shape[0], int(y0 + 0.4 * pitch) + 1)
    window = mask[top:bottom, s : e + 1]
    # Shapes are joined across one-pixel gaps: a thin stroke drawn between two pixel columns
    # comes out faint and may lose a pixel at a corner, splitting the pulse in two. Where
    # that joins the pulses of neighbouring rows (a 12x1 page's 10 mm pulses a millimetre
    # apart: the shape is taller than a row pitch), the shape with the gaps left open is
    # the second reading.
    joined = ndimage.binary_dilation(window, structure=np.ones((3, 3), dtype=bool))
    shape = _standing_shape(joined, y0 - top, pitch, foot_right) & window
    inked = np.flatnonzero(shape.any(axis=1))
    if inked.size and inked[-1] - inked[0] > pitch:
        return [shape, _standing_shape(window, y0 - top, pitch, foot_right)], top
    return [shape], top


def _standing_shape(window: np.ndarray, y0: int, pitch: float, foot_right: bool) -> np.ndarray:
    """The connected shape of ``window`` with the most ink within 0.1 pitch of row ``y0``
    in its rightmost (``foot_right``) or leftmost sixth of columns; empty if none."""
    labels, count = ndimage.label(window, structure=np.ones((3, 3), dtype=int))
    reach = max(1, int(0.1 * pitch))
    edge = max(2, window.shape[1] // 6)
    band = labels[max(0, y0 - reach) : y0 + reach + 1]
    foot = band[:, -edge:] if foot_right else band[:, :edge]
    candidates = np.bincount(foot.ravel(), minlength=count + 1)
    candidates[0] = 0
    if candidates.max() == 0:
        return np.zeros_like(window)
    return labels == int(np.argmax(candidates))


@dataclass
class _Pulse:
    rise: int  # image columns of its two edges
    fall: int
    height: float  # px, 1 mV
    foot_y: float  # image row of its 0 mV line
    foot_x: float  # image column where that was measured


def _measure_pulse(
    shape: np.ndarray, top: int, s: int, px_per_mm: float, from_left: bool, baseline_y: float
) -> _Pulse | None:
    """The pulse in ``shape`` (columns from ``s``), read from its left end (``from_left``) or
    its right: a vertical stroke at least 2 mm tall (the rise), a flat top at the stroke's
    upper end, a second stroke as tall at least 2 mm further (the fall), and the 0 mV line
    at the rise's lower end: the foot beyond the fall, or, where that was lost (a thin
    horizontal stroke taken for a grid line), the two strokes' lower ends. Measured as
    stroke centres, so the pen width cancels out; a QRS complex has no flat top and a lead
    label is not part of the shape."""
    sub = shape if from_left else shape[:, ::-1]
    has, centre, extent = _centres(sub)
    first = np.argmax(sub, axis=0)
    last = sub.shape[0] - 1 - np.argmax(sub[::-1], axis=0)
    # The rise stands on the row's baseline (``baseline_y``, image rows): a lead label's
    # strokes beside the pulse do not.
    stroke = has & (extent >= 2 * px_per_mm) & (np.abs(top + last - baseline_y) <= max(3.0, 1.5 * px_per_mm))
    # Flat: the topmost stroke of the column is a pen's width. Measured from the column's
    # first ink down to its first paper, not to its last ink: a grid line's remnant drawn
    # across the pulse (a major line at 0.5 mV, a JPEG's smear of a heavy grid) lies below
    # the plateau with paper between.
    below = np.arange(sub.shape[0])[:, None] >= first[None, :]
    paper = below & ~sub
    thickness = np.where(
        has, np.where(paper.any(axis=0), np.argmax(paper, axis=0), sub.shape[0]) - first - 1, 0
    )
    flat = has & (thickness <= max(3, 0.6 * px_per_mm))
    # A fall is one stroke, inked along most of its extent: a label's glyph under the plateau
    # spans as far, plateau to glyph foot, with paper between.
    solid = sub.sum(axis=0) >= 0.6 * (extent + 1)
    columns = np.arange(centre.size)
    starts = np.flatnonzero(stroke & ~np.r_[False, stroke[:-1]])
    for rise in starts[:4].tolist():  # a lead label's stroke may stand on the baseline too
        found = _pulse_from(
            rise, stroke, has, solid, first, last, extent, thickness, flat, columns, px_per_mm
        )
        if found is None:
            continue
        rise, fall, pulse_height, foot_y, foot_x = found
        width = sub.shape[1] - 1
        if not from_left:  # back to the shape's own columns
            rise, fall, foot_x = width - fall, width - rise, width - foot_x
        return _Pulse(s + rise, s + fall, pulse_height, top + foot_y, s + foot_x)
    return None


def _pulse_from(rise, stroke, has, solid, first, last, extent, thickness, flat, columns, px_per_mm):
    """``_measure_pulse`` from the stroke at column ``rise``: (rise, fall, height, foot row,
    foot column) in the read direction's columns, or ``None``. ``solid``: the columns whose
    ink is one stroke (a fall may be one of them); ``thickness``: of each column's topmost
    stroke."""
    rise_end = rise
    while rise_end + 1 < stroke.size and stroke[rise_end + 1]:
        rise_end += 1
    height = float(extent[rise : rise_end + 1].max())
    upper, lower = float(first[rise : rise_end + 1].min()), float(last[rise : rise_end + 1].max())
    tolerance = max(2.0, 0.15 * height)
    # The fall spans what the rise spans (a label's glyph under the plateau does not).
    spans = (np.abs(last - lower) <= tolerance) & (first <= upper + tolerance)
    tall = np.flatnonzero(solid & spans & (extent >= 0.6 * height) & (columns > rise_end + 2 * px_per_mm))
    if tall.size == 0:
        return None
    fall = int(tall[0])
    fall_end = fall
    while fall_end + 1 < stroke.size and has[fall_end + 1] and extent[fall_end + 1] >= 0.6 * height:
        fall_end += 1
    # The plateau: the shape's top at the rise's upper end. A label printed under it adds
    # ink below the line (not flat there), not above it.
    top_line = (columns > rise_end) & (columns < fall) & (np.abs(first - upper) <= tolerance)
    plateau = top_line & flat
    tallest = np.flatnonzero(extent[rise : rise_end + 1] >= 0.8 * height)
    width = fall - (rise + int(tallest[-1]))  # from the rise's stroke, not a glyph beside it
    if top_line.sum() < 0.4 * width or plateau.sum() < 0.2 * width:
        return None
    # The foot by its lowest ink: a lead label printed just above it leaves that alone.
    foot = (
        has
        & (columns > fall_end)
        & (columns <= fall_end + 2 * px_per_mm)
        & (np.abs(last - lower) <= tolerance)
    )
    pen = float(np.median(thickness[plateau]))
    if foot.any():
        foot_y, foot_x = float(np.median(last[foot])) - pen / 2, float(np.mean(columns[foot]))
    elif abs(float(last[fall : fall_end + 1].max()) - lower) <= tolerance:
        foot_y, foot_x = lower - pen / 2, float(fall_end)
    else:
        return None
    pulse_height = foot_y - float(np.median(first[plateau] + thickness[plateau] / 2))
    if pulse_height <= 2.0 * px_per_mm:  # at least 2 mm/mV
        return None
    # Each edge at its stroke's centre, over the columns as tall as it: a glyph touching the
    # rise (a label printed over it) widens its run of columns but is not as tall.
    edges = []
    for lo, hi in ((rise, rise_end), (fall, fall_end)):
        span = np.arange(lo, hi + 1)
        edges.append(int(round(span[extent[span] >= 0.8 * extent[span].max()].mean())))
    return edges[0], edges[1], pulse_height, foot_y, foot_x


def _before(runs: list[tuple[int, int]], x: int, px_per_mm: float) -> list[tuple[int, int]]:
    """The runs ending within 8 mm before column ``x``."""
    return [(s, e) for s, e in runs if e < x and x - e < 8 * px_per_mm]


def _after(runs: list[tuple[int, int]], x: int, px_per_mm: float) -> list[tuple[int, int]]:
    """The runs starting within 8 mm after column ``x``."""
    return [(s, e) for s, e in runs if s > x and s - x < 8 * px_per_mm]


def _calibrate(
    mask: np.ndarray,
    pulse_ink: np.ndarray,
    row: Row,
    runs: list[tuple[int, int]],
    ink_runs: list[tuple[int, int]],
    px_per_mm: float,
    pitch: float,
) -> None:
    """Find and measure the row's 1 mV calibration pulse (on ``pulse_ink``), wherever the
    cart printed it: a run of ink just before the trace or just after it, or joined to the
    trace's first or last 0.3 s (its baseline running on into the trace). A joined pulse is
    cut off the trace, where the trace starts after it (``_trace_past_pulse``).

    The pulse is two tall vertical strokes 0.2 s apart; the flat stroke between them is
    1 mV, the flat stroke on the trace's side is the printer's 0 mV line for the row.
    """
    px_per_s = (row.x_end - row.x_start) / DURATION_S
    window = int(0.32 * px_per_s)
    # Runs of ink beside the trace (``runs``), then of the ink the pulse is measured on
    # (``ink_runs``): a pulse apart from the trace may be one the segmenter dropped whole,
    # or in part (its rise and top drawn on grid lines), leaving the trace's run a stub.
    before = [
        r[-1] for r in (_before(runs, row.x_start, px_per_mm), _before(ink_runs, row.x_start, px_per_mm)) if r
    ]
    after = [r[0] for r in (_after(runs, row.x_end, px_per_mm), _after(ink_runs, row.x_end, px_per_mm)) if r]
    # (columns, the shape is the one standing on the baseline at the window's right end,
    # the pulse is read from the left, where: -1 joined to the start, 1 to the end, 0 apart)
    candidates = [(run, True, True, 0) for run in dict.fromkeys(before)]
    candidates += [(run, False, False, 0) for run in dict.fromkeys(after)]
    candidates += [
        ((row.x_start, row.x_start + window), False, True, -1),
        ((row.x_end - window, row.x_end), True, False, 1),
    ]
    _measure_first_pulse(mask, pulse_ink, row, candidates, px_per_mm, pitch)


def _runs_apart(band: np.ndarray, row: Row, margin: int, px_per_mm: float) -> list[tuple[int, int]]:
    """The runs of inked columns of ``band`` (a row's reach) apart from ``row``'s trace,
    ``margin`` px beside its ends included: where a pulse printed apart from the trace is
    (the last run before it, the first after it); what joins the trace is not apart."""
    beside = band.any(axis=0)
    beside[max(0, row.x_start - margin) : row.x_end + margin + 1] = False
    return _runs(beside, max_gap=max(1, round(0.75 * px_per_mm)))


def _calibrate_faint(
    mask: np.ndarray, faint_ink: np.ndarray, row: Row, reach: slice, px_per_mm: float, pitch: float
) -> None:
    """``_calibrate`` once more, on fainter ink (``ink.faint_ink``: a thin pen's pulse in a
    small scan comes out at half the trace's darkness). That ink holds more of the grid, and
    by the trace's ends its QRS complexes whole: a row's last one was measured as a 20 mm/mV
    pulse 0.09 s wide (``bench refusals``' seed 71, record 3: every lead read at 0.43 of its
    size). So only a pulse 0.2 s wide (within 20 %) counts, and anything else, a near miss
    too (which on the trace's ink moves the row's ends and may refuse the page), leaves the
    row as it was."""
    # A faint speck touching the trace's end is not apart from it.
    runs = _runs_apart(faint_ink[reach], row, 2, px_per_mm)
    before = copy.copy(row)
    _calibrate(mask, faint_ink, row, runs, runs, px_per_mm, pitch)
    if not (row.calibrated and abs(row.pulse_ratio - 1.0) <= 0.2):
        vars(row).update(vars(before))


def _calibrate_beside(
    mask: np.ndarray, pulse_ink: np.ndarray, row: Row, px_per_mm: float, pitch: float
) -> None:
    """Look for a row's pulse just before its start and just after its end, once its ends
    are the page's (``_agree_on_ends``): where a label printed beside the pulse joined
    label, pulse and trace into one run of ink, no run lay apart and the row started at
    the label, too far from the pulse to take it for one joined to the trace."""
    reach = int(0.45 * (row.x_end - row.x_start) / DURATION_S)
    last = pulse_ink.shape[1] - 1
    candidates = [
        ((max(0, row.x_start - reach), row.x_start - 1), True, True, 0),
        ((row.x_end + 1, min(last, row.x_end + reach)), False, False, 0),
    ]
    _measure_first_pulse(
        mask, pulse_ink, row, [c for c in candidates if c[0][1] - c[0][0] > reach // 2], px_per_mm, pitch
    )


def _measure_first_pulse(
    mask: np.ndarray, pulse_ink: np.ndarray, row: Row, candidates: list, px_per_mm: float, pitch: float
) -> None:
    """Calibrate ``row`` on the first of ``candidates`` that holds a pulse: ``((s, e),
    foot_right, from_left, joined)`` as ``_calibrate`` lists them."""
    px_per_s = (row.x_end - row.x_start) / DURATION_S
    for (s, e), foot_right, from_left, joined in candidates:
        shapes, top = _pulse_shapes(pulse_ink, row, s, e, pitch, foot_right)
        baselines = _baselines_near(mask, row, (s + e) / 2, (s, e), from_left, px_per_s)
        measured = (
            _measure_pulse(shape, top, s, px_per_mm, from_left, y) for shape in shapes for y in baselines
        )
        pulse = next((p for p in measured if p is not None), None)
        if pulse is None:
            continue
        x_start, x_end = row.x_start, row.x_end
        if joined:  # the pulse's own rise must be at the run's very end, not a QRS within it
            edge = pulse.rise - row.x_start if joined < 0 else row.x_end - pulse.fall
            if edge > 0.12 * px_per_s:  # 3 mm: the pulse's foot
                continue
            if joined < 0:
                x_start = _trace_past_pulse(mask, row, pulse.fall, 1, 0.04 * px_per_s, px_per_mm)
            else:
                x_end = _trace_past_pulse(mask, row, pulse.rise, -1, 0.08 * px_per_s, px_per_mm)
        row_px_per_s = (x_end - x_start) / DURATION_S
        gain = pulse.height / (row_px_per_s / PAPER_SPEED_MM_S)
        if not any(abs(gain / standard - 1) <= GAIN_TOLERANCE for standard in CART_GAINS_MM_PER_MV):
            continue  # a step of some other height (a grid line's bit, a label's stroke)
        row.x_start, row.x_end = x_start, x_end
        row.pulse_ratio = (pulse.fall - pulse.rise) / (0.2 * row_px_per_s)
        if not MIN_PULSE_RATIO <= row.pulse_ratio <= 1.5:
            return  # a pulse, but not 0.2 s of this row's time: the row is not 10 s (cropped?)
        row.px_per_mv = pulse.height
        row.calibrated = True
        # Re-anchor the baseline on the pulse's foot, keeping the slope fitted on the trace,
        # where the two agree: a foot over a millimetre off the line fitted along the trace's
        # flat stretches marks a page bent between them (a photo's curl, which the straight
        # line through one point at the row's end carries across the whole row).
        if abs(pulse.foot_y - row.baseline(np.array([pulse.foot_x]))[0]) <= FOOT_AGREEMENT_MM * px_per_mm:
            row.intercept = pulse.foot_y - row.slope * pulse.foot_x
            row.anchor_x = float(pulse.foot_x)
        return


def _trace_past_pulse(
    mask: np.ndarray, row: Row, edge: int, step: int, joined: float, px_per_mm: float
) -> int:
    """The column where ``row``'s trace starts after the pulse whose fall is at column
    ``edge`` (``step`` 1), or ends before the pulse whose rise is there (``step`` -1).

    Carts run 1-3 mm of 0 mV line from a joined pulse into the trace: the trace's edge is
    taken ``joined`` px along it. A pulse printed apart, its foot 2 mm or so short of the
    trace, joins the trace's run of ink only through what bridges the gap on the picture (a
    grid line's dash, a speck): there the trace starts where ink runs on for a millimetre
    after the gap."""
    reach = int(round(6 * px_per_mm))
    lo, hi = (edge, edge + reach) if step > 0 else (max(0, edge - reach + 1), edge + 1)
    columns = mask[row.top : row.bottom, lo:hi].any(axis=0)[::step]
    runs = _runs(columns, max_gap=1)
    guess = int(round(edge + step * joined))
    if len(runs) < 2 or runs[0][0] > 1 or runs[0][1] > 3 * px_per_mm:
        return guess  # the 0 mV line runs on into the trace
    for start, end in runs[1:]:
        if end - start >= px_per_mm or end == columns.size - 1:
            return edge + step * start
    return guess


def _baselines_near(
    mask: np.ndarray, row: Row, x: float, window: tuple[int, int], before: bool, px_per_s: float
) -> list[float]:
    """``row``'s baseline (image row) at column ``x``, fitted on the trace's first second
    past ``window`` (``before``: the window lies before the trace; else its last second).
    The row's own line is fitted over all 10 s: where the paper curls up at the page's edge
    (a photo) the baseline bends, and at the pulse it lay 2-3 mm off the pulse's foot.
    Where too few columns of that second are a thin stroke to fit (the row's line is
    answered), a blurred photo's pen may be wider than the fit's 3 px: a second answer is
    fitted on the strokes a pixel wider than their median, for a pulse not found on the
    first (on a clean page, a label's strokes in that second would throw it off)."""
    span = int(1.0 * px_per_s)
    if before:
        lo = max(window[1] + 1, row.x_start)
        hi = lo + span
    else:
        hi = min(window[0] - 1, row.x_end)
        lo = hi - span
    line = float(row.baseline(np.array([x]))[0])
    band = mask[row.top : row.bottom]
    if lo < 0 or hi >= band.shape[1]:
        return [line]
    intercept, slope = _fit_baseline(band, row.top, line, lo, hi)
    if (intercept, slope) != (line, 0.0):
        return [intercept + slope * x]
    has, _, extent = _centres(band[:, lo : hi + 1])
    if not has.any():
        return [line]
    wide = max(3.0, float(np.median(extent[has])) + 1)
    intercept, slope = _fit_baseline(band, row.top, line, lo, hi, thin=wide)
    return [line, intercept + slope * x] if (intercept, slope) != (line, 0.0) else [line]


def _agree_on_ends(rows: list[Row]) -> list[str]:
    """Every row of a standard layout starts at t = 0 s and ends at t = 10 s on the same
    vertical lines (slanted only by perspective). A row whose own ends disagree with the
    others' (a faint stretch cut its trace short, a remnant of the grid lengthened it) takes
    them from a line fitted through the rows that agree; with fewer than half agreeing, the
    page is refused. Rows whose pulse was measured and placed agree on where t = 0 lies
    better than any count of rows without: two or more of them that agree are the reference
    (a label printed beside each row's pulse joins label, pulse and trace into one run of
    ink, and on every row where the pulse was not found that run starts 0.3 s early)."""
    widths = np.array([r.x_end - r.x_start for r in rows], dtype=float)
    measured = np.array([r.calibrated for r in rows])
    reference = float(np.median(widths[measured])) if measured.sum() >= 2 else float(np.median(widths))
    trusted = 2  # measured rows that agree enough to be the reference
    if measured.sum() == 1:
        # One measured row, every other one longer by what a label and pulse joined to the
        # trace's start or end add (0.3-0.5 s; a photo's blur joined them on every row but
        # one): the measured row says where t = 0 is.
        longer = widths[~measured] / widths[measured][0] - 1
        if longer.size and np.all((longer > 0.03) & (longer <= 0.05)):
            reference, trusted = float(widths[measured][0]), 1
    agree = np.abs(widths / reference - 1) <= 0.03
    if measured.sum() >= 2:
        # Where measured rows are the reference, one without a pulse that is longer by 0.15 s
        # ran on over something joined to it: a pulse cut by the picture's edge, its rise
        # lost (ecg00002: every other row 0.26 s longer, lead II's first 0.22 s its pulse).
        agree &= measured | (widths / reference - 1 <= 0.015)
    if agree.all():
        return []
    if agree.sum() < max(2, len(rows) / 2) and (agree & measured).sum() < trusted:
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
    short, long = int((~agree & (widths < reference)).sum()), int((~agree & (widths > reference)).sum())
    warnings = [f"{short} row(s) partly missing: their ends taken from the other rows"] if short else []
    if long:
        warnings.append(
            f"{long} row(s) ran on past the others (a pulse or label joined to the trace): "
            "their ends taken from the other rows"
        )
    return warnings


def _within_picture(rows: list[Row], width: int) -> list[str]:
    """Row ends taken from the other rows may lie off the picture (a photo that cuts the
    first row's start): up to 3 % of the row off, the end is moved to the picture's edge
    (its time axis stretched by as much), with a warning; further, the page is refused."""
    moved = 0
    for row in rows:
        off = max(0, -row.x_start) + max(0, row.x_end - (width - 1))
        if off == 0:
            continue
        if off > 0.03 * (row.x_end - row.x_start):
            raise IntakeError(
                "no_layout", "part of the tracing lies outside the picture: is the whole page in it?"
            )
        row.x_start, row.x_end = max(0, row.x_start), min(width - 1, row.x_end)
        moved += 1
    return [f"{moved} row(s) run off the picture: their time axis is approximate"] if moved else []


def find_layout(
    mask: np.ndarray, pulse_ink: np.ndarray | None = None, faint_pulse_ink: np.ndarray | None = None
) -> PageLayout:
    """The layout of the deskewed trace ``mask``, or ``IntakeError('no_layout')``.
    ``pulse_ink``: where to measure the calibration pulses, when not on ``mask`` (the ink
    before the page segmenter dropped what it calls grid: it gives a pulse's edge drawn on a
    major grid line to the grid); ``faint_pulse_ink``: fainter ink, where a row's pulse not
    found on ``pulse_ink`` is looked for once more (``ink.faint_ink``)."""
    h, w = mask.shape
    guess_px_per_mm = w / PAGE_MM[0]
    framed, mask = mask, _without_frame(mask)
    pulse_ink = mask if pulse_ink is None else pulse_ink & ~(framed & ~mask)
    ys, coverage = find_baselines(mask, guess_px_per_mm)
    # A row within 3 mm of the picture's top or bottom is the page's edge or frame (a trace
    # there would be cut off), else it must be drawn like a trace.
    margin = 3.0 * guess_px_per_mm
    trace_like = _trace_like_rows(mask, ys, guess_px_per_mm) & (ys >= margin) & (ys <= h - 1 - margin)
    ys, coverage = ys[trace_like], coverage[trace_like]
    shape = _best_shape(ys, coverage)
    if shape is None:
        raise IntakeError(
            "no_layout",
            f"found {ys.size} trace row(s); a 12-lead printout has at least 3 (3x4), evenly spaced. "
            "Is this an ECG, and is the whole tracing in the picture?",
        )
    extra = _unexplained(ys, coverage, shape)
    n_strips = len(shape.members) - shape.block
    if extra.size:
        raise IntakeError(
            "unsupported_layout",
            f"{len(shape.members) + extra.size} trace rows: {shape.block} evenly spaced rows of leads, "
            f"{n_strips} full-width strip(s) and {extra.size} more; supported layouts are "
            f"{', '.join(LAYOUT_BY_SHAPE.values())}",
        )
    rows_y = ys[shape.members]
    n = rows_y.size
    block_pitch = np.diff(rows_y[: shape.block])
    regularity = float(1.0 - min(1.0, block_pitch.std() / block_pitch.mean()))
    mean_pitch = float(np.diff(rows_y).mean())
    edges = np.r_[rows_y[0] - 0.6 * mean_pitch, (rows_y[:-1] + rows_y[1:]) / 2, rows_y[-1] + 0.5 * mean_pitch]
    edges = np.clip(np.round(edges), 0, h).astype(int)

    pieces = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))[0]
    pieces = (pieces, ndimage.find_objects(pieces))  # labelled once, for the specks and the marks
    solid = _without_specks(mask, guess_px_per_mm, pieces)
    rows: list[Row] = []
    for i, y in enumerate(rows_y):
        top, bottom = edges[i], edges[i + 1]
        band = mask[top:bottom]
        # Columns are judged from the previous to the next row's baseline: a wide S wave
        # that leaves the band for a few columns must not split the trace in two, and the
        # header above the first row must not join the calibration pulse to the trace.
        reach = slice(int(rows_y[i - 1]) if i else top, int(rows_y[i + 1]) if i + 1 < n else bottom)
        runs = _runs(solid[reach].any(axis=0), max_gap=max(1, round(0.75 * guess_px_per_mm)))
        if not runs:
            raise IntakeError("no_layout", f"row {i + 1} has no trace")
        x_start, x_end = _trace_run(runs, guess_px_per_mm)
        intercept, slope = _fit_baseline(band, top, y, x_start, x_end)
        row = Row(intercept, slope, top, bottom, x_start, x_end)
        rows.append(row)
        ink_runs = runs
        if pulse_ink is not mask:  # a pulse apart from the trace the segmenter dropped whole
            ink_runs = _runs_apart(pulse_ink[reach], row, 0, guess_px_per_mm)
        _calibrate(mask, pulse_ink, row, runs, ink_runs, guess_px_per_mm, mean_pitch)
        if not row.calibrated and faint_pulse_ink is not None:
            _calibrate_faint(mask, faint_pulse_ink, row, reach, guess_px_per_mm, mean_pitch)

    # Most rows' pulses at a width other than 0.2 s of the row: the rows are not 10 s. One
    # row's is no evidence: a cart printing a 0.1 s pulse (ecg00048) shows it on a row or two
    # where the rest are lost to the grid.
    ratios = [r.pulse_ratio for r in rows if r.pulse_ratio is not None]
    if len(ratios) >= max(2, len(rows) / 2) and not MIN_PULSE_RATIO <= float(np.median(ratios)) <= 1.5:
        raise IntakeError(
            "no_layout",
            f"the calibration pulses are {float(np.median(ratios)):.1f} times as wide as 0.2 s of the trace: "
            "the rows do not hold 10 s each. Is part of the tracing cut off?",
        )
    warnings = _agree_on_ends(rows) + _within_picture(rows, w)
    if any(row.calibrated for row in rows):
        for row in rows:
            if not row.calibrated:
                _calibrate_beside(mask, pulse_ink, row, guess_px_per_mm, mean_pitch)
    layout, rhythm_leads, rhythm_assumed = _name_layout(
        mask, pieces, rows, guess_px_per_mm, shape.block, n_strips, warnings
    )
    # Separators are looked for on the trace's ink, then on all ink: the segmenter drops
    # many of a dotted line's dots with the dotted grid they resemble.
    inks = (mask,) if pulse_ink is mask else (mask, pulse_ink)
    anchored = separators.anchor_rows(inks, rows, layout_rows(layout, rhythm_leads), guess_px_per_mm)
    if anchored:
        warnings += anchored + _within_picture(rows, w)
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
    return PageLayout(layout, rows, px_per_mm, gain, warnings, regularity, rhythm_leads, rhythm_assumed)


def _name_layout(
    mask: np.ndarray,
    pieces: tuple[np.ndarray, list],
    rows: list[Row],
    px_per_mm: float,
    block: int,
    n_strips: int,
    warnings: list[str],
) -> tuple[str, tuple[str, ...], tuple[bool, ...]]:
    """The layout of ``block`` rows of leads and ``n_strips`` strips, the strips' leads, and
    which of those were assumed (label not read).

    Six even rows are ``3x4+3`` or ``6x2`` (seven: ``6x2+1``, or four strips, which no
    cart prints and this reader refuses): rows of four print a lead change (tick, label) at
    2.5 and 7.5 s, rows of two and strips do not; both print one at 5 s in the top rows, the
    yardstick of what a lead change looks like on this page. Where the page prints none, the
    bottom rows decide: on a 3x4+3 page each repeats a window of the top rows.
    A strip is the lead its label names (``_strip_lead``), else the layout's standard lead,
    with a warning.
    """
    trace, marks = strips.split_marks(mask, px_per_mm, pieces)
    profiles = strips.row_profiles(trace, rows)
    if block == 6 and _reads_as_3x4(profiles, marks, rows):
        block, n_strips = 3, n_strips + 3
    if (block, n_strips) not in LAYOUT_BY_SHAPE:
        raise IntakeError(
            "unsupported_layout",
            f"{len(rows)} trace rows: {block} of 4 leads and {n_strips} full-width strips; "
            f"supported layouts are {', '.join(LAYOUT_BY_SHAPE.values())}",
        )
    layout = LAYOUT_BY_SHAPE[(block, n_strips)]
    lead_rows = layout_rows(layout)[:block]
    labels = {
        segment.lead: strips.label_crop(marks, rows[r], segment.t0, px_per_mm)
        for r, segments in enumerate(lead_rows)
        for segment in segments
    }
    named, assumed = [], []
    for k, standard in enumerate(RHYTHM_LEADS[layout]):
        lead = _strip_lead(profiles, rows, lead_rows, block + k, standard, labels, marks, px_per_mm)
        if lead is None:
            warnings.append(
                f"rhythm strip lead assumed {standard}: its label was not read, so the strip is not used"
            )
        named.append(lead or standard)
        assumed.append(lead is None)
    return layout, tuple(named), tuple(assumed)


def _strip_lead(
    profiles: list[np.ndarray],
    rows: list[Row],
    lead_rows: list[list],
    strip: int,
    standard: str,
    labels: dict[str, np.ndarray | None],
    marks: np.ndarray,
    px_per_mm: float,
) -> str | None:
    """The lead of rhythm strip ``strip`` as its label names it, or ``None`` where it cannot
    be read: the label must match the page's label of one of the leads carts print as strips
    (II, V1, V5; ``strips.LABEL_MATCH``, by ``strips.LABEL_MARGIN`` over the next, twice that
    for a lead other than the standard), and the strip's trace must agree with that lead's
    window (``strips.MATCH``) about as well as with the standard lead's. The trace alone
    cannot name a strip: leads look alike (II and V5 often match each other's windows as
    well as their own copies)."""
    own = strips.label_crop(marks, rows[strip], 0.0, px_per_mm)
    if own is None:
        return None
    likeness = sorted(
        ((strips.label_likeness(own, labels.get(lead)), lead) for lead in _STRIP_LEADS), reverse=True
    )
    (best, lead), runner_up = likeness[0], likeness[1][0]
    # Naming a strip other than the standard takes twice the margin: a label is a few pixels.
    margin = strips.LABEL_MARGIN * (1 if lead == standard else 2)
    if best < strips.LABEL_MATCH or best - runner_up < margin:
        return None
    traced = {name: score for score, name in strips.best_matches(profiles, rows, lead_rows, strip)}
    if traced.get(lead, -1.0) >= max(strips.MATCH, traced.get(standard, -1.0) - 0.02):
        return lead
    return None


def _reads_as_3x4(profiles: list[np.ndarray], marks: np.ndarray, rows: list[Row]) -> bool:
    """Whether a block of six even rows (and the strip below it, if any) is three rows of
    four leads and strips, not six rows of two."""
    counts = strips.mark_counts(marks, rows, (2.5, 5.0, 7.5))
    at_5 = float(counts[:3, 1].mean())  # both layouts change lead here in the top rows
    if at_5 > 0:
        fours = float(counts[:3, [0, 2]].mean()) / at_5  # > 0 on a 3x4 page, ~0 on 6x2
        twos = float(counts[3:, 1].mean()) / at_5  # > 0 on 6x2 (V4-V6 start), ~0 below 3x4
        return fours > twos and fours >= 0.1
    # A 6x2 page's top rows print one lead over their first 5 s; a 3x4 page's change lead at
    # 2.5 s (I to aVR, II to aVL, III to aVF), and I and aVR never look alike. The bottom rows
    # cannot tell alone: a 6x2 page's (aVR|V4, aVL|V5, aVF|V6) match a precordial window of
    # the top rows as well as a strip matches its lead (V4-V6 resemble V3).
    changing = sum(not _one_lead(profiles[r][: profiles[r].size // 2]) for r in range(3))
    if changing != 1:  # none: 6x2; two or three: 3x4. One may be a misjudged row: the strips say.
        return changing > 1
    lead_rows = layout_rows("3x4")
    repeats = (
        min(strips.best_matches(profiles, rows, lead_rows, r)[0][0] for r in range(3, 6)) >= strips.MATCH
    )
    # Neighbouring leads look alike (V3 and V4 repeat each other's windows), so a strip must
    # also be one lead all along: a 6x2 page's bottom rows change lead at 5 s.
    return repeats and all(_one_lead(profiles[r]) for r in range(3, 6))


def _one_lead(profile: np.ndarray) -> bool:
    """Whether a row's two halves look like one lead: their swings (2nd to 98th percentile
    of the trace's height) within a factor of 1.6 of each other and leaning the same way
    (the QRS mostly above or mostly below the baseline)."""
    halves = [h[np.isfinite(h)] for h in np.array_split(profile, 2)]
    if min(h.size for h in halves) < 10:
        return True  # too little read to tell: the trace match decides
    lows, mids, highs = zip(*(np.percentile(h, [2, 50, 98]) for h in halves), strict=True)
    swings = [max(hi - lo, 1e-6) for lo, hi in zip(lows, highs, strict=True)]
    leans = [(hi - mid) - (mid - lo) for lo, mid, hi in zip(lows, mids, highs, strict=True)]
    alike = max(swings) / min(swings) <= 1.6
    same_way = leans[0] * leans[1] >= 0 or min(abs(v) for v in leans) < 0.2 * min(swings)
    return alike and same_way
