"""Digitise a printed page: each trace row followed column by column into a time series.

Ownership first: text (lead labels) and lead-change ticks sit inside the rows; they are
small connected shapes, the trace is long or tall, so connected components under 4 mm in
both directions are dropped, and every remaining shape goes to the row whose baseline
corridor it touches most (``assign_traces``).

Then each row's trace is followed column by column (``_trace_row``). Where the stroke is
about one pen wide (the isoelectric line, P and T waves), the column's sample is its
darkness-weighted centre, to a fraction of a pixel. Where it is taller (a QRS slope or a
peak), the column holds two samples, the stroke's upper and lower centre-line extremes, in
the order the neighbouring columns say the trace runs, so a spike keeps its height and its
place in time. Rows are cut into their leads' segments and interpolated onto the signal's
common time axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..leads import DURATION_S, layout_rows
from .faint_strokes import faint_joins, spike_tips
from .layout import PageLayout, Row, piecewise
from .separators import erase_separators
from .signal import EcgSignal
from .strips import identify_strip

__all__ = ["assign_traces", "read_signal", "place_strips", "RowInk", "RowTrace"]

_MIN_MARK_MM = 4.0
_GAP_COLUMNS = 3.0  # a stretch without ink longer than this many columns stays NaN
_MIN_PERSPECTIVE_S = 0.006  # a page's perspective bends a row's middle by at least this, or it is flat
_PULSE_ZONE_S = 0.3  # a calibration pulse printed at a row's end lies this close to it (0.2 s wide)
_TICK_S = 0.1  # a lead-change tick lies this close to the lead change
_LABEL_ZONE_S = 0.3  # a lead label spans about 7 mm (0.3 s at 25 mm/s) after its lead change


def _dilate3(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation by shifted ORs (several times faster than a rank filter)."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _cut_lead_changes(mask: np.ndarray, page: PageLayout) -> np.ndarray:
    """``mask`` with a thin vertical cut where one lead hands over to the next, from 1.5 mm
    above the baseline up. Carts print a tick and the next lead's label there; a tall wave
    touching the tick would otherwise join the label to the trace."""
    cut = mask.copy()
    half = max(1, round(0.4 * page.px_per_mm))
    for row, segments in zip(page.rows, layout_rows(page.layout, page.rhythm_leads), strict=True):
        for segment in segments[1:]:
            x = int(round(float(row.x_at(segment.t0))))
            bottom = int(row.baseline(np.array([x]))[0] - 1.5 * page.px_per_mm)
            cut[row.top : max(row.top, bottom), max(0, x - half) : x + half + 1] = False
    return cut


def _large_shapes(boxes: list, minimum: float) -> np.ndarray:
    """Per label (0 = background), whether its shape (``boxes``: ``ndimage.find_objects``'s)
    spans ``minimum`` px in either direction."""
    large = np.zeros(len(boxes) + 1, dtype=bool)
    for index, box in enumerate(boxes, start=1):
        if box is not None:
            large[index] = box[0].stop - box[0].start >= minimum or box[1].stop - box[1].start >= minimum
    return large


def _marked_columns(page: PageLayout) -> list[tuple[float, float]]:
    """Image columns (from, to) where a cart prints more than the trace: a lead change's tick
    and the label after it, and the calibration pulse at either end of a row."""
    marked = []
    for row, segments in zip(page.rows, layout_rows(page.layout, page.rhythm_leads), strict=True):
        per_s = (row.x_end - row.x_start) / DURATION_S
        marked += [
            (-np.inf, row.x_start + _PULSE_ZONE_S * per_s),
            (row.x_end - _PULSE_ZONE_S * per_s, np.inf),
        ]
        for segment in segments:
            x = float(row.x_at(segment.t0))
            marked.append((x - _TICK_S * per_s, x + _LABEL_ZONE_S * per_s))
    return marked


def _joined_by_faint_strokes(
    labels: np.ndarray,
    boxes: list,
    large: np.ndarray,
    touches: np.ndarray,
    darkness: np.ndarray,
    page: PageLayout,
) -> np.ndarray:
    """Per label, its label once a shape (``boxes``: the labels' ``ndimage.find_objects``)
    touching no baseline corridor (``touches``: per row and label, pixels on the row's
    corridor) is merged with the trace it belongs to (labels stay in 0..count): the shapes
    faint steep strokes join it to (``faint_joins``), or, for a spike's tip whose stroke is
    lost altogether, the trace right under or over it (``spike_tips``).

    Only large shapes, or tips away from the lead changes: a lead label joined to the trace
    by a faint lead-change tick stays apart, and so do the dots of a dotted grid. Near a
    row's ends, where carts print the calibration pulse, a floating shape must be reached by
    two strokes (a wave's top by its up- and downstroke): the top of a pulse the layout
    reader missed is reached by its rise alone, its fall ends on the pulse's short foot
    (ecg00013's row 2 read the pulse into V5). Two shapes that each touch a corridor are
    never merged, nor shapes of two rows: a tall R wave whose faint top nears the row above
    must not make the two rows' traces one."""
    same = np.arange(large.size)
    floating = touches.sum(axis=0) == 0
    above, below, stroke = faint_joins(darkness, labels, page.px_per_mm).T
    keep = large[above] & large[below] & (floating[above] | floating[below])  # (never both anchored)
    reaching = np.r_[
        np.c_[above, stroke][keep & floating[above]], np.c_[below, stroke][keep & floating[below]]
    ]
    strokes = np.bincount(np.unique(reaching, axis=0)[:, 0], minlength=large.size)
    centre = np.r_[0.0, [(box[1].start + box[1].stop) / 2 if box else 0.0 for box in boxes]]
    start, end = (
        float(np.median([getattr(row, side) for row in page.rows])) for side in ("x_start", "x_end")
    )
    margin = _PULSE_ZONE_S * (end - start) / DURATION_S
    at_ends = (centre < start + margin) | (centre > end - margin)
    enough = ~at_ends | (strokes >= 2)
    keep &= (~floating[above] | enough[above]) & (~floating[below] | enough[below])
    home = np.argmax(touches, axis=0)
    tip, base = spike_tips(labels, boxes, floating, home, page.rows, page.px_per_mm, _marked_columns(page)).T
    above, below = np.r_[above[keep], tip], np.r_[below[keep], base]
    if not above.size:
        return same
    links = coo_matrix((np.ones(above.size), (above, below)), shape=(large.size, large.size))
    _, component = connected_components(links, directed=False)
    # Shapes joined to two rows' traces are left alone.
    anchored = np.flatnonzero(large & ~floating)
    rows = np.unique(np.c_[component[anchored], home[anchored]], axis=0)
    alone = np.bincount(rows[:, 0], minlength=component.max() + 1)[component] > 1
    _, merged = np.unique(np.where(alone, large.size + same, component), return_inverse=True)
    return merged  # the background (label 0, component 0) stays 0: np.unique sorts


@dataclass
class RowInk:
    """One row's share of the page: image rows ``top`` to ``top + len(own)``; ``own`` is the
    ink that is this row's trace, ``traces`` all traces' ink there (``None`` unless the row's
    trace touches a neighbour's, when it must be followed through the crossings)."""

    top: int
    own: np.ndarray
    traces: np.ndarray | None = None


def assign_traces(mask: np.ndarray, page: PageLayout, darkness: np.ndarray | None = None) -> list[RowInk]:
    """Per row, the part of ``mask`` that is that row's trace (``RowInk``).

    A trace keeps returning to its row's 0 mV line; lead labels, lead-change ticks and text
    float above it. So a connected shape is trace only if it touches a baseline corridor
    (+-1 mm) and spans at least 4 mm, and it belongs to the row whose corridor it touches
    most: a deep S wave reaching into the next row's band stays with its own lead. Shapes
    touching two corridors (overlapping traces) are kept inside the row's band, and the row
    carries all traces' ink 1.5 row pitches around its baseline for ``_follow``. Shapes are
    grouped after closing 1-pixel gaps, so a trace broken by JPEG or blur stays
    one shape with its QRS spikes; given the page's ``darkness``, two shapes of 4 mm or more
    joined by a steep stroke too faint for the mask are one shape too (``faint_strokes``).
    """
    grouped = _dilate3(_cut_lead_changes(mask, page))
    labels, count = ndimage.label(grouped, structure=np.ones((3, 3), dtype=int))
    boxes = ndimage.find_objects(labels, count)  # once, for the size and join rules
    large = _large_shapes(boxes, _MIN_MARK_MM * page.px_per_mm)
    h, _ = mask.shape
    reach = max(1, round(page.px_per_mm))
    touches = np.zeros((len(page.rows), count + 1))
    for r, row in enumerate(page.rows):
        x = np.arange(row.x_start, row.x_end + 1)
        y = np.round(row.baseline(x)).astype(int)[None, :] + np.arange(-reach, reach + 1)[:, None]
        hits = labels[np.clip(y, 0, h - 1), np.broadcast_to(x, y.shape)]
        touches[r] = np.bincount(hits.ravel(), minlength=count + 1)
    touches[:, 0] = 0  # background
    if darkness is not None:
        merged = _joined_by_faint_strokes(labels, boxes, large, touches, darkness, page)
        labels, count = merged[labels], int(merged.max())
        touches = np.stack([np.bincount(merged, weights=t, minlength=count + 1) for t in touches])
        large = np.bincount(merged, weights=large, minlength=count + 1) > 0
    total = touches.sum(axis=0)
    home = np.argmax(touches, axis=0)
    ranked = np.sort(touches, axis=0)
    # Touching a second corridor a fifth as much as its own: a shape of overlapping traces.
    shared = (ranked[-2] > 0.2 * ranked[-1]) if len(page.rows) > 1 else np.zeros(count + 1, bool)
    trace = large & (total > 0)
    owned = []
    for r, row in enumerate(page.rows):
        pitch = row.bottom - row.top
        touching = bool((shared & trace & (touches[r] > 0)).any())
        # The row's own shapes within half a band above and below (its tallest spikes); with
        # overlapping neighbours, 1.5 pitches, where the trace is followed column by column.
        margin = int(1.5 * pitch) if touching else pitch // 2
        lo, hi = max(0, row.top - margin), min(h, row.bottom + margin)
        window = labels[lo:hi]
        keep = (trace & (home == r) & ~shared)[window]
        keep[row.top - lo : row.bottom - lo] |= (trace & shared)[window[row.top - lo : row.bottom - lo]]
        traces = mask[lo:hi] & trace[window] if touching else None
        owned.append(RowInk(lo, mask[lo:hi] & keep, traces))
    return owned


class RowTrace:
    """One row's trace as samples: image column ``x`` (float, px) and row ``y`` (px)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, columns: int):
        self.x, self.y, self.columns = x, y, columns


def _pen_width(thickness: np.ndarray, px_per_mm: float) -> float:
    """The stroke's width, from the flat stretches of this very row (print, blur and JPEG
    widen it)."""
    flat = thickness[np.isfinite(thickness) & (thickness <= max(3.0, 0.8 * px_per_mm))]
    return float(np.median(flat)) if flat.size else 0.3 * px_per_mm


def _column_extents(own: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: has ink, first and last inked row."""
    has = own.any(axis=0)
    first = np.argmax(own, axis=0).astype(np.float64)
    last = (own.shape[0] - 1 - np.argmax(own[::-1], axis=0)).astype(np.float64)
    return has, first, last


def _follow(
    traces: np.ndarray, start_y: float, pen: float, max_away: float, patience: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Follow one trace through ``traces`` (all traces' ink, several rows of them), column by
    column from ``start_y``: per column the run of ink that continues the previous column's
    (touching it; nearest ``start_y`` when several do), or the nearest run within a jump of
    ``3 * pen``. A path that stays further than ``max_away`` from ``start_y`` for ``patience``
    columns (longer than any QRS) has strayed onto a neighbour: it returns to the run nearest
    ``start_y`` as soon as one lies near it.
    Returns per column: has ink, first and last row of the chosen run."""
    h, w = traces.shape
    step = np.diff(traces.view(np.int8), axis=0, prepend=0, append=0).T  # (w, h + 1)
    col_s, row_s = np.nonzero(step == 1)
    _, row_e = np.nonzero(step == -1)  # the runs' ends (exclusive), in the same order
    bounds = np.searchsorted(col_s, np.arange(w + 1)).tolist()
    starts, ends = row_s.tolist(), (row_e - 1).tolist()
    has, first, last = [False] * w, [0] * w, [0] * w
    lo = hi = start_y
    away = 0
    jump = 3 * pen
    started = False
    for c in range(w):
        a, b = bounds[c], bounds[c + 1]
        if a == b:
            continue
        if b - a == 1 and started:  # the common case, kept cheap: one run in the column
            s_k, e_k = starts[a], ends[a]
            if not (s_k <= hi + 1 and e_k >= lo - 1) and (s_k - hi if s_k > hi else lo - e_k) >= jump:
                continue
            best = a
        else:
            best, best_cost = -1, (jump if started else float("inf"))  # the first run: the nearest
            for k in range(a, b):
                s_k, e_k = starts[k], ends[k]
                if s_k <= hi + 1 and e_k >= lo - 1:
                    # Touching the previous run beats any jump; of several, the one nearer
                    # home: leaving a crossing, a neighbour's trace lies a row pitch away.
                    cost = abs((s_k + e_k) / 2 - start_y) - 1e6
                else:
                    cost = s_k - hi if s_k > hi else lo - e_k
                if cost < best_cost:
                    best, best_cost = k, cost
            if best < 0:
                continue
        lo, hi = starts[best], ends[best]
        offset = (lo + hi) / 2 - start_y
        away = away + 1 if (offset > max_away or offset < -max_away) else 0
        if away > patience:  # strayed onto a neighbour: back home once a run is there
            home = min(range(a, b), key=lambda k: abs((starts[k] + ends[k]) / 2 - start_y))
            if abs((starts[home] + ends[home]) / 2 - start_y) < 0.4 * max_away:
                lo, hi = starts[home], ends[home]
                away = 0
        has[c], first[c], last[c] = True, lo, hi
        started = True
    # dtype: an empty list would make a float array, which `&` refuses in _trace_row
    return np.array(has, dtype=bool), np.array(first, dtype=np.float64), np.array(last, dtype=np.float64)


def _trace_row(
    ink: RowInk, darkness: np.ndarray, row: Row, px_per_mm: float, pitch: float, label_zones: list[float]
) -> RowTrace:
    """Follow the row's trace from ``row.x_start`` to ``row.x_end`` into samples."""
    x0, x1 = row.x_start, row.x_end + 1
    has, first, last = _column_extents(ink.own[:, x0:x1])
    thickness = np.where(has, last - first + 1, np.nan)
    pen = _pen_width(thickness, px_per_mm)
    band = ink.own[:, x0:x1]
    start_y = float(row.baseline(np.array([float(x0)]))[0]) - ink.top
    seconds = (x1 - x0) / DURATION_S
    if ink.traces is not None:  # overlapping neighbours: follow the trace through them
        has, first, last = _follow(ink.traces[:, x0:x1], start_y, pen, 0.6 * pitch, int(0.05 * seconds))
        band = ink.traces[:, x0:x1]
    else:
        # Carts print each lead's label just after the lead change, where a tall first
        # complex can reach it: there the trace is followed run by run, not read whole.
        for t0 in label_zones:
            zone = slice(int(t0 * seconds), min(x1 - x0, int((t0 + _LABEL_ZONE_S) * seconds)))
            h, f, la = _follow(band[:, zone], start_y, pen, 0.6 * pitch, zone.stop)
            has[zone], first[zone], last[zone] = h, f, la
    thickness = np.where(has, last - first + 1, np.nan)
    # Darkness-weighted centre of each column's chosen run (prefix sums down the columns give
    # any run's sums at once): a fraction of a pixel on flat stretches.
    r0 = int(first[has].min()) if has.any() else 0
    r1 = int(last[has].max()) + 1 if has.any() else 1
    weight = darkness[r0:r1, x0:x1] * band[r0:r1]
    rows = np.arange(r0, r1, dtype=np.float32)[:, None]
    below = np.zeros((1, weight.shape[1]), dtype=np.float32)
    total_to = np.vstack([below, np.cumsum(weight, axis=0)])
    moment_to = np.vstack([below, np.cumsum(weight * rows, axis=0)])
    columns_all = np.arange(weight.shape[1])
    lo = np.clip(first.astype(int) - r0, 0, r1 - r0)
    hi = np.clip(last.astype(int) + 1 - r0, 0, r1 - r0)
    total = total_to[hi, columns_all] - total_to[lo, columns_all]
    moment = moment_to[hi, columns_all] - moment_to[lo, columns_all]
    centre = np.where(has & (total > 0), moment / np.maximum(total, 1e-9), (first + last) / 2)
    # Centre-line extremes of taller strokes: half a pen inside the ink's edges. A tall
    # column is a slope (the trace enters low and leaves high, or the reverse) or a peak /
    # trough (both neighbours on one side: the extreme itself, so a spike keeps its height).
    # A slope keeps its darkness-weighted centre, not the middle of its extent: anti-aliasing
    # spreads a thin pen into the neighbouring column, so where a QRS turns, a column's
    # extent reaches the strokes either side of it, faintly, and its middle is pulled toward
    # them (seed 501 page 7: 88 % of the error left against the recording's column means lay
    # in the 7 % steepest columns).
    upper = first - 0.5 + pen / 2
    lower = last + 0.5 - pen / 2
    columns = np.flatnonzero(has)
    mid = (first + last) / 2
    y = centre[columns]
    tall = (thickness[columns] > pen + 1.0) & (lower[columns] > upper[columns])
    k = np.arange(columns.size)
    left, right = columns[np.maximum(k - 1, 0)], columns[np.minimum(k + 1, columns.size - 1)]
    top, bottom = first[columns], last[columns]
    # A tall column whose ink reaches higher (lower) than both neighbours' holds a peak
    # (trough): the extreme itself. Otherwise it is a slope.
    peak = tall & (top <= first[left]) & (top <= first[right])
    trough = tall & (bottom >= last[left]) & (bottom >= last[right])
    both = peak & trough  # a spike up and down within one column: the larger excursion
    base = (mid[left] + mid[right]) / 2
    up_more = (base - top) >= (bottom - base)
    peak &= ~both | up_more
    trough &= ~both | ~up_more
    y = np.where(peak, upper[columns], y)
    y = np.where(trough, lower[columns], y)
    x = columns.astype(np.float64)
    return RowTrace(x + x0, y, x1 - x0)


def _homography(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 projective map taking four ``source`` points to four ``target`` points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def _flat_u(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The flat page's horizontal coordinate of image points (``x``, ``y``) under the
    projective map ``h``."""
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w


def _bend_s(h: np.ndarray, page: PageLayout) -> float:
    """How far (s) the projective map ``h`` moves the middle of any row from where a
    straight axis between the row's ends puts it."""
    bends = []
    for row in page.rows:
        x = np.array([row.x_start, (row.x_start + row.x_end) / 2, row.x_end], dtype=np.float64)
        u = _flat_u(h, x, row.baseline(x))
        bends.append(abs((u[1] - u[0]) / (u[2] - u[0]) - 0.5) * DURATION_S)
    return max(bends)


def page_clock(page: PageLayout):
    """``clock(row, x, y) -> t`` (s): where each point of a row lies in time.

    A photographed page is seen in perspective (keystone): a row's far end is compressed,
    so time is not linear in x along it. The four ends of the first and last rows' traces
    (t = 0 s and 10 s on two known lines) fix the projective map back to the flat page;
    through it, every row's points are placed between its own two ends. A flat scan's map is
    affine and changes nothing; one that bends no row's middle by ``_MIN_PERSPECTIVE_S`` is
    taken as flat: the row ends are whole pixels, and the projective map fitted to their
    rounding bent the time axis of clean pages by a few milliseconds, which the unaligned SNR
    feels (seed 4242 page 11: 10.9 dB with the map, 12.5 without). Photos bend rows by 7-90 ms,
    clean pages and scans by 0-6 ms (a few up to 15)."""
    first, last = page.rows[0], page.rows[-1]
    corners = np.array([
        [first.x_start, first.baseline(np.array([float(first.x_start)]))[0]],
        [first.x_end, first.baseline(np.array([float(first.x_end)]))[0]],
        [last.x_start, last.baseline(np.array([float(last.x_start)]))[0]],
        [last.x_end, last.baseline(np.array([float(last.x_end)]))[0]],
    ])  # fmt: skip
    flat = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    try:
        h = _homography(corners, flat) if len(page.rows) > 1 else None
    except np.linalg.LinAlgError:
        h = None
    if h is not None and _bend_s(h, page) < _MIN_PERSPECTIVE_S:
        h = None

    def u_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x if h is None else _flat_u(h, x, y)

    def clock(row: Row, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if row.knots:  # the printed lead changes: time runs through them piecewise
            times, xs = row.time_knots()
            return piecewise(u_of(x, y), u_of(xs, row.baseline(xs)), times)
        ends = np.array([row.x_start, row.x_end], dtype=np.float64)
        u0, u1 = u_of(ends, row.baseline(ends))
        return (u_of(x, y) - u0) * DURATION_S / (u1 - u0)

    return clock


def _segment_values(
    trace: RowTrace, row: Row, top: int, t0: float, t1: float, rate: float, clock
) -> tuple[np.ndarray, np.ndarray]:
    """Grid times (s) in ``[t0, t1)`` and the trace's voltage there (NaN across gaps)."""
    seconds_per_px = DURATION_S / (row.x_end - row.x_start)
    t = clock(row, trace.x, row.baseline(trace.x))
    mv = (row.baseline(trace.x) - (trace.y + top)) / row.px_per_mv
    # Half a column at each end belongs to the lead change (the stroke joining two leads).
    edge = 0.6 * seconds_per_px
    inside = (t >= t0 + (edge if t0 > 0 else -1)) & (t <= t1 - (edge if t1 < DURATION_S else -1))
    t, mv = t[inside], mv[inside]
    grid = np.arange(int(np.ceil(t0 * rate)), int(np.ceil(t1 * rate))) / rate
    if t.size < 2:
        return grid, np.full(grid.size, np.nan)
    values = np.interp(grid, t, mv)
    nearest = np.abs(grid[:, None] - t[np.clip(np.searchsorted(t, grid), 1, t.size - 1)[:, None] + [-1, 0]])
    values[nearest.min(axis=1) > _GAP_COLUMNS * seconds_per_px] = np.nan
    return grid, values


def read_signal(
    mask: np.ndarray, darkness: np.ndarray, page: PageLayout, rate: float, gain_source: str
) -> EcgSignal:
    """The 12-lead signal printed on the deskewed page (``mask``: the trace pixels,
    ``darkness``: 0 paper .. 1 ink, same shape)."""
    signal = EcgSignal.empty()
    signal.sample_rate, signal.gain_source = rate, gain_source
    taken: dict[str, float] = {}
    pending: list = []  # the rhythm strips
    pitch = float(np.median([r.bottom - r.top for r in page.rows]))
    clock = page_clock(page)
    mask = erase_separators(mask, page)
    for r, (ink, row, segments) in enumerate(
        zip(
            assign_traces(mask, page, darkness),
            page.rows,
            layout_rows(page.layout, page.rhythm_leads),
            strict=True,
        )
    ):
        top = ink.top
        zones = [segment.t0 for segment in segments]
        trace = _trace_row(ink, darkness[top : top + ink.own.shape[0]], row, page.px_per_mm, pitch, zones)
        for segment in segments:
            # A lead printed twice (a rhythm strip repeats its lead): keep the longer one.
            length = segment.t1 - segment.t0
            if taken.get(segment.lead, 0.0) >= length and not page.is_strip(r):
                continue
            grid, values = _segment_values(trace, row, top, segment.t0, segment.t1, rate, clock)
            if page.is_strip(r):  # placed once every row of leads is read
                pending.append((segment, grid, values, page.assumed_strip(r)))
                continue
            signal.put(segment.lead, grid, values, (segment.t0, segment.t1))
            taken[segment.lead] = length
    place_strips(signal, page, pending, taken)
    return signal


def place_strips(signal: EcgSignal, page: PageLayout, pending: list, taken: dict[str, float]) -> None:
    """Put each rhythm strip where its trace says it belongs (``strips.identify_strip``: the
    lead whose own print it repeats), replacing that lead's shorter print. A strip that
    matches no lead keeps the lead its label names; one whose label was not read either is
    left out (it may be any lead). ``pending``: ``(segment, times, values, assumed)`` in the
    strips' order."""
    for strip, (segment, times, values, assumed) in enumerate(pending):
        lead = identify_strip(signal, times, values, segment.lead, labelled=not assumed)
        if not assumed and lead is None:
            lead = segment.lead  # its label was read and its trace does not say otherwise
        page.settle_strip(strip, lead)
        if lead is not None and taken.get(lead, 0.0) < segment.t1 - segment.t0:
            signal.put(lead, times, values, (segment.t0, segment.t1))
            taken[lead] = segment.t1 - segment.t0
