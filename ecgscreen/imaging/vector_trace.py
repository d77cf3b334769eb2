"""Read the 12-lead signal of a vector PDF from its polylines (``pdf_vectors``).

The layout is found as for any page: the polylines are drawn into a trace mask at the
working resolution and ``layout.find_layout`` names the rows, their baselines, the trace's
ends and the calibration pulse. The values then come from the polylines themselves, not the
pixels: each polyline goes to the row whose baseline its median lies nearest (a trace
spends most of its time on its isoelectric line, even where tall complexes cross into the
neighbouring rows), its x becomes time through the row's exact ends (the extreme points of
the row's polylines: t = 0 s and t = 10 s), and its y becomes millivolts through the pulse
(its own polyline's height, exact), else the gain the page prints as text, else the
standard gain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from ..contract import GAIN_MM_PER_MV, PAGE_MM
from ..leads import DURATION_S, layout_rows
from .digitize import place_strips
from .layout import PageLayout, find_layout
from .pdf_vectors import Polyline
from .signal import EcgSignal

__all__ = ["VECTOR_PX_PER_MM", "read_vector_signal"]

VECTOR_PX_PER_MM = 4.0  # the layout is found on a mask this fine, as for a scan
_MIN_TRACE_S = 0.5  # shorter polylines are marks (pulse, ticks, glyph strokes), not traces


def _is_rule(line: Polyline) -> bool:
    """A straight rule drawn dark: a grid line or a frame (axis-aligned segments only, over
    30 mm). A trace has a point per sample, and a calibration pulse is shorter."""
    steps = np.diff(line, axis=0)
    straight = (
        bool(np.all((np.abs(steps[:, 0]) < 1e-6) | (np.abs(steps[:, 1]) < 1e-6))) if len(steps) else True
    )
    return straight and float(np.ptp(line, axis=0).max()) > 30.0


def _mask(polylines: list[Polyline]) -> np.ndarray:
    w, h = (int(round(v * VECTOR_PX_PER_MM)) for v in PAGE_MM)
    image = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(image)
    for line in polylines:
        draw.line((line * VECTOR_PX_PER_MM).ravel().tolist(), fill=1, width=1)
    return np.asarray(image, dtype=bool)


def _pulse_mm(
    polylines: list[Polyline], baseline_mm: float, x_start_mm: float, x_end_mm: float, pitch_mm: float
) -> tuple[float, float] | None:
    """Height and foot (the row's 0 mV line, page mm) of the calibration pulse standing near
    ``baseline_mm`` just left of the trace or just right of it (a polyline of its own,
    shorter than a trace)."""
    for line in polylines:
        x, y = line[:, 0], line[:, 1]
        before = x.max() <= x_start_mm + 1.5 and x_start_mm - x.min() < 15.0
        after = x.min() >= x_end_mm - 1.5 and x.max() - x_end_mm < 15.0
        if not (before or after) or x.max() - x.min() > 12.0:
            continue
        foot = np.abs(y - baseline_mm) < 0.15 * pitch_mm
        if foot.any() and (~foot).any():
            zero = float(np.median(y[foot]))
            if zero - y.min() > 2.0:  # at least 2 mm/mV
                return zero - float(y.min()), zero
    return None


def read_vector_signal(
    polylines: list[Polyline], rate: float, printed_gain: Callable[[], float | None] = lambda: None
) -> tuple[EcgSignal, PageLayout]:
    """The 12-lead signal drawn by ``polylines`` (page mm), and the layout it was read with;
    ``IntakeError('no_layout')`` as for any page without an ECG layout. ``printed_gain`` is
    asked only when no row has a calibration pulse."""
    polylines = [line for line in polylines if not _is_rule(line)]  # a dark grid, a frame
    page = find_layout(_mask(polylines))
    per_mm = VECTOR_PX_PER_MM
    baselines = np.array([row.baseline(np.array([float(row.x_start)]))[0] for row in page.rows]) / per_mm
    pitch = float(np.median(np.diff(baselines))) if len(baselines) > 1 else 40.0
    starts = np.array([row.x_start for row in page.rows]) / per_mm
    ends = np.array([row.x_end for row in page.rows]) / per_mm
    traces: list[list[Polyline]] = [[] for _ in page.rows]
    left, right = starts.min() - 2.0, ends.max() + 2.0  # mm: beyond every row is not a trace
    for line in polylines:
        x = line[:, 0]
        span = (x.max() - x.min()) / (page.px_per_mm / per_mm * 25.0)  # seconds at the page's scale
        if span < _MIN_TRACE_S or x.max() < starts.min() or x.min() < left or x.max() > right:
            continue  # a mark, or a frame or rule drawn across the page
        traces[int(np.argmin(np.abs(baselines - np.median(line[:, 1]))))].append(line)
    pulses = [_pulse_mm(polylines, b, s, e, pitch) for b, s, e in zip(baselines, starts, ends, strict=True)]
    found = [pulse[0] for pulse in pulses if pulse is not None]
    # A row's 0 mV line is its pulse's foot, exactly as drawn; the layout's baseline (fitted
    # on a raster of the page, a pixel at a time) only where the row has no pulse.
    baselines = np.array(
        [b if pulse is None else pulse[1] for b, pulse in zip(baselines, pulses, strict=True)]
    )
    signal = EcgSignal.empty()
    signal.sample_rate = rate
    if found:
        mm_per_mv, signal.gain_source = float(np.median(found)), "pulse"
    elif (text := printed_gain()) is not None:
        mm_per_mv, signal.gain_source = text, "text"
        signal.warnings.append(f"no calibration pulse found; the page prints {text:g} mm/mV")
    else:
        mm_per_mv, signal.gain_source = GAIN_MM_PER_MV, "standard"
        signal.warnings.append(f"no calibration pulse found; assumed the standard {GAIN_MM_PER_MV:g} mm/mV")
    taken: dict[str, float] = {}
    pending: list = []  # the rhythm strips
    rows = layout_rows(page.layout, page.rhythm_leads)
    for r, (lines, baseline, segments) in enumerate(zip(traces, baselines, rows, strict=True)):
        if not lines:
            continue
        points = np.concatenate(sorted(lines, key=lambda p: p[0, 0]))
        x0, x1 = points[:, 0].min(), points[:, 0].max()
        # A cart draws one point per sample: the row's 10 s end one sample interval after its
        # last point. Where the spacing is regular, that interval is the points' spacing; a
        # few gaps left at the lead changes (some carts' separators) do not make it irregular.
        steps = np.diff(points[:, 0])
        steps = steps[steps > 0]
        step = float(np.median(steps)) if steps.size else 0.0
        regular = steps.size and np.mean(np.abs(steps - step) < 0.1 * step) >= 0.95
        dx = step if regular else 0.0
        t = (points[:, 0] - x0) * DURATION_S / (x1 - x0 + dx)
        mv = (baseline - points[:, 1]) / mm_per_mv
        for segment in segments:
            length = segment.t1 - segment.t0
            if taken.get(segment.lead, 0.0) >= length and not page.is_strip(r):
                continue
            inside = (t >= segment.t0) & (t < segment.t1 if segment.t1 < DURATION_S else t <= segment.t1)
            if inside.sum() < 2:
                continue
            order = np.argsort(t[inside], kind="stable")
            grid = np.arange(int(np.ceil(segment.t0 * rate)), int(np.ceil(segment.t1 * rate))) / rate
            # A gap the cart left at a lead change holds the lead's first (last) value: the
            # Challenge's SNR counts a sample left NaN as 0 mV, further off than that.
            values = np.interp(grid, t[inside][order], mv[inside][order])
            if page.is_strip(r):  # placed once every row of leads is read
                pending.append((segment, grid, values, page.assumed_strip(r)))
                continue
            signal.put(segment.lead, grid, values, (segment.t0, segment.t1))
            taken[segment.lead] = length
    place_strips(signal, page, pending, taken)
    signal.warnings += [w for w in page.warnings if "rhythm strip" in w]
    page.gain_mm_per_mv = mm_per_mv
    return signal, page
