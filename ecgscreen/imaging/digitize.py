"""Read each lead's column envelope off the printed page.

Text (lead labels) and lead-change ticks sit inside the rows; they are small connected
shapes, the trace is long or tall, so connected components under 4 mm in both directions
are dropped first. Then, per image column, the highest and lowest ink of the row give the
trace's voltage range there, measured from the row's baseline and scaled by the
calibration; those are pooled into the canonical panel's columns.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..leads import canonical_window, layout_rows
from .canonical import Envelope
from .layout import PageLayout

__all__ = ["assign_traces", "read_envelopes"]

_MIN_MARK_MM = 4.0


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
    for row, segments in zip(page.rows, layout_rows(page.layout), strict=True):
        for segment in segments[1:]:
            x = int(round(float(row.x_at(segment.t0))))
            bottom = int(row.baseline(np.array([x]))[0] - 1.5 * page.px_per_mm)
            cut[row.top : max(row.top, bottom), max(0, x - half) : x + half + 1] = False
    return cut


def assign_traces(mask: np.ndarray, page: PageLayout) -> list[tuple[int, np.ndarray]]:
    """Per row, the part of ``mask`` that is that row's trace: ``(top, sub_mask)`` where
    ``sub_mask`` covers image rows ``top`` to ``top + len(sub_mask)``.

    A trace keeps returning to its row's 0 mV line; lead labels, lead-change ticks and text
    float above it. So a connected shape is trace only if it touches a baseline corridor
    (+-1 mm) and spans at least 4 mm, and it belongs to the row whose corridor it touches
    most: a deep S wave reaching into the next row's band stays with its own lead. Shapes
    touching two corridors (overlapping traces) are split at the midline between rows.
    Shapes are grouped after closing 1-pixel gaps, so a trace broken by JPEG or blur stays
    one shape with its QRS spikes.
    """
    grouped = _dilate3(_cut_lead_changes(mask, page))
    labels, count = ndimage.label(grouped, structure=np.ones((3, 3), dtype=int))
    h, _ = mask.shape
    reach = max(1, round(page.px_per_mm))
    touches = np.zeros((len(page.rows), count + 1))
    for r, row in enumerate(page.rows):
        x = np.arange(row.x_start, row.x_end + 1)
        y = np.round(row.baseline(x)).astype(int)[None, :] + np.arange(-reach, reach + 1)[:, None]
        hits = labels[np.clip(y, 0, h - 1), np.broadcast_to(x, y.shape)]
        touches[r] = np.bincount(hits.ravel(), minlength=count + 1)
    touches[:, 0] = 0  # background
    minimum = _MIN_MARK_MM * page.px_per_mm
    large = np.zeros(count + 1, dtype=bool)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            large[index] = box[0].stop - box[0].start >= minimum or box[1].stop - box[1].start >= minimum
    total = touches.sum(axis=0)
    home = np.argmax(touches, axis=0)
    shared = (np.sort(touches, axis=0)[-2] > 0.2 * total) if len(page.rows) > 1 else np.zeros(count + 1, bool)
    trace = large & (total > 0)
    owned = []
    for r, row in enumerate(page.rows):
        # The row's own shapes within half a band above and below (its tallest spikes);
        # shapes shared with a neighbour only inside its band.
        margin = (row.bottom - row.top) // 2
        lo, hi = max(0, row.top - margin), min(h, row.bottom + margin)
        window = labels[lo:hi]
        keep = (trace & (home == r) & ~shared)[window]
        keep[row.top - lo : row.bottom - lo] |= (trace & shared)[window[row.top - lo : row.bottom - lo]]
        owned.append((lo, mask[lo:hi] & keep))
    return owned


def _column_extents(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last inked row of each column of ``band`` (NaN where none)."""
    has = band.any(axis=0)
    first = np.argmax(band, axis=0).astype(float)
    last = (band.shape[0] - 1 - np.argmax(band[::-1], axis=0)).astype(float)
    first[~has] = np.nan
    last[~has] = np.nan
    return first, last


def _pool(values: np.ndarray, edges: np.ndarray, reducer: np.ufunc) -> np.ndarray:
    """Reduce ``values`` over ``[edges[c], edges[c+1]]`` (inclusive) for each c, NaN-aware."""
    values = values[: edges[-1] + 1]
    pooled = reducer.reduceat(values, edges[:-1])
    return reducer(pooled, values[edges[1:]])


def read_envelopes(mask: np.ndarray, page: PageLayout, columns: int) -> dict[str, Envelope]:
    """Each lead's envelope over its canonical window, in mV, ``columns`` wide."""
    envelopes: dict[str, Envelope] = {}
    for (top, own), row, segments in zip(
        assign_traces(mask, page), page.rows, layout_rows(page.layout), strict=True
    ):
        first, last = _column_extents(own)
        # Extents are the stroke's edges; the voltage is at its centre line. The stroke's
        # width is what flat stretches of this very row measure (print, blur and JPEG widen it).
        thickness = last - first + 1
        flat = thickness[np.isfinite(thickness) & (thickness <= max(3.0, 0.8 * page.px_per_mm))]
        pen = 0.5 * (float(np.median(flat)) if flat.size else 0.3 * page.px_per_mm)
        x = np.arange(own.shape[1])
        baseline = row.baseline(x) - top
        high = (baseline - first - pen + 0.5) / row.px_per_mv  # up on paper = positive voltage
        low = (baseline - last + pen - 0.5) / row.px_per_mv
        for segment in segments:
            if segment.lead in envelopes:
                continue  # the rhythm strip repeats lead II
            t0, t1 = canonical_window(segment.lead)
            if not (segment.t0 <= t0 and t1 <= segment.t1):
                continue
            edges = np.round(row.x_at(t0 + (t1 - t0) * np.arange(columns + 1) / columns)).astype(int)
            edges = np.clip(edges, 0, own.shape[1] - 1)
            hi = _pool(high, edges, np.fmax)
            lo = _pool(low, edges, np.fmin)
            envelopes[segment.lead] = Envelope(np.minimum(lo, hi), np.maximum(lo, hi))
    return envelopes
