"""Lead-change separators: the printed marks that say where a row's lead changes lie in time.

Many carts print a dashed or dotted vertical line where a row of four (or two) leads changes
lead, at t = 2.5, 5 and 7.5 s, often through every row of leads at once. It is the one mark
on the page that places a time on the paper itself. A row's ends are only inferred, from
where its ink starts and stops: a pulse or label joined to the trace, or a label printed over
the trace's start, moves them by tenths of a second (ecg00048, a phone photo: no pulse found,
every row taken from its pulse's rise, every lead read 0.5 s early), and a photo's perspective
or a curled page bends time along a row where a straight axis between the ends cannot.

A separator is a column of short, evenly spaced dashes spanning most of the row's band, near
where the row's ends put a lead change (``find_separator``); a QRS cut by the grid's removal is
mostly ink or unevenly cut, a dotted grid left in the mask has as many dots in every column.
One lead-change time is one line down the page (slanted only by a photo's perspective), so
the rows' separators at that time are fitted by one line, and the line counts only where two
or more rows, and at least half of those that change lead there, show it (a single row's
"separator" may be simultaneous QRS complexes). The lines are each row of leads' time knots
(``Row.knots``): its time axis runs through them piecewise (``Row.x_at``,
``digitize.page_clock``), to a fraction of a pixel, which the unaligned SNR feels. Two or more
also say where t = 0 and 10 s lie (extrapolated by their own spacing, which follows a photo's
perspective): a row's inferred end further from that than ``_END_TOLERANCE_S`` (more, the
further it is extrapolated) takes the separators' place, rhythm strips included. Ticks above
the baseline and gaps in the trace are not looked for: a tick is a few pixels, too like a
label's stroke or a QRS.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d

from ..leads import DURATION_S, Segment

__all__ = ["anchor_rows", "erase_separators", "find_separator"]

_WINDOW_S = 0.8  # a separator is looked for this far either side of where the row's ends put it
_DASH_MM = 1.6  # a dash or dot of a separator is at most this tall (1 mm dashes, blurred)
_MIN_DASHES = 5
_MIN_SPAN = 0.55  # the dashes spread over at least this fraction of the row's band
_EVEN = 0.6  # at least this fraction of the dashes follow the one before at the line's pitch
_UPRIGHT_PX = 2.0  # a lead change's separators within this many pixels of each other are one upright line
_MAX_INKED = 0.7  # a dashed or dotted line is at most this much ink from its first dash to its last
# The separator's column holds this many times the dashes of any column in its window more
# than _APART_PX away: a dotted grid left in the mask has as many dots in every column.
_CLEAR = 1.5
_APART_PX = 4
# Inferred row ends this close to where the separators put them are kept, per 2.5 s (a lead's
# window in rows of four) that the separators are extrapolated over to reach the end.
_END_TOLERANCE_S, _LEAD_WINDOW_S = 0.12, 2.5
_WIDTH_AGREEMENT = 0.15  # separators implying a row more than this much wider or narrower are not trusted


def _short_runs(window: np.ndarray, px_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``window`` (bool, rows x columns): how many vertical runs of ink at most
    ``_DASH_MM`` tall it holds, and how far apart its first and last such run lie (px)."""
    padded = np.pad(window, ((1, 1), (0, 0)))
    starts = np.nonzero((padded[1:-1] & ~padded[:-2]).T)  # (column, row), column-major
    ends = np.nonzero((padded[1:-1] & ~padded[2:]).T)
    column, top, bottom = starts[0], starts[1], ends[1]  # runs pair up in order within a column
    short = bottom - top + 1 <= _DASH_MM * px_per_mm
    counts = np.bincount(column[short], minlength=window.shape[1])
    first = np.full(window.shape[1], window.shape[0])
    last = np.full(window.shape[1], -1)
    np.minimum.at(first, column[short], top[short])
    np.maximum.at(last, column[short], bottom[short])
    return counts, np.maximum(last - first, 0)


def _evenly_dashed(column: np.ndarray) -> bool:
    """Whether the runs of ink down ``column`` (bool) are a printed dashed or dotted line's:
    repeating at one pitch, with paper between them. A QRS the grid's removal cut into pieces
    is mostly ink (pieces 1 px apart), or of no one pitch (ecg00010: pieces of 1 to 13 px);
    a label's strokes are few and irregular."""
    starts = np.flatnonzero(np.diff(np.r_[0, column.astype(np.int8)]) == 1)
    ends = np.flatnonzero(np.diff(np.r_[column.astype(np.int8), 0]) == -1)
    pitch = np.diff(starts)
    if pitch.size < _MIN_DASHES - 1:
        return False
    typical = float(np.median(pitch))
    even = float(np.mean(np.abs(pitch - typical) <= max(1.0, 0.35 * typical)))
    inked = float(column[starts[0] : ends[-1] + 1].mean())
    return typical >= 2 and even >= _EVEN and inked <= _MAX_INKED


def find_separator(mask: np.ndarray, row, t: float, px_per_mm: float) -> float | None:
    """The image column (at ``row``'s band) of a dashed or dotted line marking time ``t``,
    or ``None`` where none stands out near where the row's ends put ``t``."""
    seconds = (row.x_end - row.x_start) / DURATION_S
    expected = float(row.x_at(t))
    x0 = max(0, int(expected - _WINDOW_S * seconds))
    x1 = min(mask.shape[1], int(expected + _WINDOW_S * seconds) + 1)
    if x1 - x0 < 2 * _APART_PX + 1:
        return None
    # Three columns joined: a line slanted by a photo's perspective, or dotted off-column.
    window = maximum_filter1d(mask[row.top : row.bottom, x0:x1], 3, axis=1)
    counts, span = _short_runs(window, px_per_mm)
    best = int(np.argmax(counts))
    others = np.abs(np.arange(counts.size) - best) > _APART_PX
    if (
        counts[best] < _MIN_DASHES
        or span[best] < _MIN_SPAN * window.shape[0]
        or (others.any() and counts[best] < _CLEAR * counts[others].max())
    ):
        return None
    # The line itself, in the unjoined columns at the peak (its plateau: best to best + 2).
    lo = max(0, best - 2)
    near = mask[row.top : row.bottom, x0 + lo : x0 + best + 3]
    raw = _short_runs(near, px_per_mm)[0]
    if raw.sum() == 0:
        return None
    c = int(np.argmax(raw))
    beside = c - 1 if c > 0 and (c + 1 >= raw.size or raw[c - 1] >= raw[c + 1]) else c + 1
    if not _evenly_dashed(near[:, c] | near[:, min(beside, raw.size - 1)]):
        return None
    # Its middle, to a fraction of a pixel (the unaligned SNR feels 0.75 px at 96 dpi): the
    # centroid of the dashes there. Columns further out would take in the next lead's label,
    # printed a millimetre after the line.
    return x0 + lo + float(np.dot(np.arange(raw.size), raw) / raw.sum())


def _implied_ends(knots: tuple[tuple[float, float], ...]) -> tuple[float, float] | None:
    """Where t = 0 and 10 s lie by a row's knots (two or more): through them by a line, or
    with three by a parabola (a photo's perspective changes their spacing along the row)."""
    if len(knots) < 2:
        return None
    t, x = (np.array(v, dtype=np.float64) for v in zip(*knots, strict=True))
    fit = np.polyfit(t, x, min(2, len(knots) - 1))
    return float(np.polyval(fit, 0.0)), float(np.polyval(fit, DURATION_S))


def _time_lines(
    found: dict[float, list[tuple[float, float]]], printed: dict[float, int], tolerance: float
) -> dict[float, np.ndarray]:
    """Per lead-change time, the line ``x = a + b * y`` its separators lie on across the rows
    (one time is one straight line on the page, slanted only by perspective): fitted through
    the rows where it was found, when that is two or more and at least half the rows that
    change lead there (``printed``), a row's separator more than ``tolerance`` px off the line
    through the others dropped (a stroke taken for one)."""
    lines = {}
    for t, points in found.items():
        if len(points) < max(2, printed[t] / 2):
            continue  # one row's "separator" may be simultaneous QRS complexes (ecg00010)
        y, x = (np.array(v) for v in zip(*points, strict=True))
        if len(points) >= 3:
            keep = np.ones(len(points), dtype=bool)
            for i in range(len(points)):
                others = np.arange(len(points)) != i
                line = np.polyfit(y[others], x[others], 1)
                keep[i] = abs(np.polyval(line, y[i]) - x[i]) <= tolerance
            y, x = y[keep], x[keep]
        if x.size == 0:
            continue
        # Within a pixel or two of one column, the spread is the dashes' measurement noise:
        # the line is upright (the page was levelled); only a photo's perspective slants it.
        upright = x.size < 2 or np.ptp(y) == 0 or np.ptp(x) <= _UPRIGHT_PX
        lines[t] = np.array([0.0, float(np.median(x))]) if upright else np.polyfit(y, x, 1)
    return lines


def anchor_rows(
    inks: tuple[np.ndarray, ...], rows: list, row_segments: list[list[Segment]], px_per_mm: float
) -> list[str]:
    """Find the rows' separators (at their lead changes: ``row_segments``, the layout's; on
    the first of ``inks`` that shows one), draw each lead-change time as one line down the
    page through them, and make the lines the rows of leads' time knots (``Row.knots``,
    ``Row.separators``); a row whose inferred ends disagree with where the lines put t = 0
    and 10 s takes those. Returns the warnings to show."""
    found: dict[float, list[tuple[float, float]]] = {}
    printed: dict[float, int] = {}
    middles = [float(row.baseline(np.array([(row.x_start + row.x_end) / 2]))[0]) for row in rows]
    for row, segments, y in zip(rows, row_segments, middles, strict=True):
        for t in (segment.t0 for segment in segments if segment.t0 > 0):
            printed[t] = printed.get(t, 0) + 1
            x = next((x for ink in inks if (x := find_separator(ink, row, t, px_per_mm)) is not None), None)
            if x is not None:
                found.setdefault(t, []).append((y, x))
    seconds = float(np.median([r.x_end - r.x_start for r in rows])) / DURATION_S
    lines = _time_lines(found, printed, _END_TOLERANCE_S / 2 * seconds)
    moved = 0
    for row, segments, y in zip(rows, row_segments, middles, strict=True):
        knots = tuple(sorted((t, float(np.polyval(line, y))) for t, line in lines.items()))
        xs = [x for _, x in knots]
        if not xs or np.any(np.diff(xs) <= 0):
            continue
        ends = _implied_ends(knots)
        if ends is not None:
            start, end = ends
            if abs((end - start) / (row.x_end - row.x_start) - 1) > _WIDTH_AGREEMENT:
                continue  # separators that imply another row width are not this row's
            # An end further from the knots is extrapolated further (and a photo's perspective
            # bends the spacing it is extrapolated by): its tolerance grows with the distance.
            times = np.array([t for t, _ in knots])
            tolerance = [
                _END_TOLERANCE_S * seconds * max(1.0, float(np.min(np.abs(times - t_end))) / _LEAD_WINDOW_S)
                for t_end in (0.0, DURATION_S)
            ]
            start = row.x_start if abs(start - row.x_start) <= tolerance[0] else int(round(start))
            end = row.x_end if abs(end - row.x_end) <= tolerance[1] else int(round(end))
            if (start, end) != (row.x_start, row.x_end):
                row.x_start, row.x_end = start, end
                moved += 1
        if len(segments) == 1 or not (row.x_start < xs[0] and xs[-1] < row.x_end):
            continue  # a strip: its ends placed by the lines, its time axis its own
        row.separators = tuple(xs)
        row.knots = knots
    return [f"{moved} row(s) placed in time by their lead-change separators"] if moved else []


def erase_separators(mask: np.ndarray, page) -> np.ndarray:
    """``mask`` without the separators' dashes on the rows of leads: within 2 px of each
    separator, the short vertical runs of ink (dash-sized) that do not go on sideways (a dash
    stands alone; the trace crosses the line and continues on both sides, and its steep
    strokes are long runs). Left in, the dashes next to the trace join it and are followed as
    a spike at each lead change (ecg00048)."""
    if not any(row.separators for row in page.rows):
        return mask
    out = mask.copy()
    w = mask.shape[1]
    dash = max(2, int(round(_DASH_MM * page.px_per_mm)))
    for row in page.rows:
        for x in row.separators:
            c = int(round(x))
            if c - 3 < 0 or c + 3 >= w:
                continue
            band = mask[row.top : row.bottom]
            # ink at this height (or a pixel off) just beside the line, left or right
            sideways = maximum_filter1d(band[:, c - 3] | band[:, c + 3], 3)
            strip = band[:, c - 2 : c + 3]
            # each pixel's vertical run length in its column: long runs are trace strokes
            padded = np.pad(strip, ((1, 1), (0, 0))).astype(np.int8)
            edges = np.diff(padded, axis=0)
            for k in range(strip.shape[1]):
                starts, ends = np.flatnonzero(edges[:, k] == 1), np.flatnonzero(edges[:, k] == -1)
                for a, b in zip(starts, ends, strict=True):
                    if b - a <= dash and not sideways[a:b].any():
                        out[row.top + a : row.top + b, c - 2 + k] = False
    return out
