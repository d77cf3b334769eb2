"""Steep strokes too faint for the ink threshold (``imaging.faint_strokes``) and how the
digitiser uses them (``digitize.assign_traces``)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscreen.imaging.digitize import assign_traces
from ecgscreen.imaging.faint_strokes import faint_joins
from ecgscreen.imaging.layout import PageLayout, Row

PX_PER_MM = 4.0
BASELINE, RAISED = 150, 118  # image rows of the first row's 0 mV line and of an elevated ST segment
PITCH = 200  # px between the page's three rows
X = 150  # the upstroke's column (the lead changes lie at 110 and 200)
FAINT = 0.15  # a thin pen's steep stroke in a small scan: under the ink threshold (0.28)


def _lead_with_a_raised_segment(stroke: float = FAINT, fall: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(darkness, ink mask) of a 3x4 page whose first lead has a QRS with an elevated ST
    segment, 8 mm up and 12 mm long, between an upstroke at ``X`` and a downstroke at
    ``X + 47``: the mask holds the flat ink, the steep strokes are only ``stroke`` dark.
    ``fall=False``: a calibration pulse's top instead, whose fall ends on a 1 mm foot."""
    darkness = np.zeros((BASELINE + 3 * PITCH, 400), dtype=np.float32)
    darkness[BASELINE : BASELINE + 2, 20 : X + 1] = 0.9
    darkness[RAISED : RAISED + 2, X : X + 48] = 0.9
    darkness[BASELINE : BASELINE + 2, X + 47 : 380 if fall else X + 51] = 0.9
    darkness[RAISED + 2 : BASELINE, [X, X + 47]] = stroke
    for k in (1, 2):
        darkness[BASELINE + k * PITCH : BASELINE + k * PITCH + 2, 20:380] = 0.9
    return darkness, darkness > 0.28


def _page(end: int = 380) -> PageLayout:
    rows = [
        Row(float(BASELINE + k * PITCH), 0.0, 60 + k * PITCH, 60 + (k + 1) * PITCH, 20, end) for k in range(3)
    ]
    return PageLayout("3x4", rows, PX_PER_MM, 10.0)


def test_faint_strokes_join_the_raised_segment_to_its_baseline():
    darkness, ink = _lead_with_a_raised_segment()
    shapes = np.zeros(ink.shape, dtype=np.int64)
    shapes[BASELINE:][ink[BASELINE:]] = 1
    shapes[:BASELINE][ink[:BASELINE]] = 2
    joins = faint_joins(darkness, shapes, PX_PER_MM)
    # The segment lies above each stroke, the baseline below it: two strokes.
    assert {tuple(j[:2]) for j in joins} == {(2, 1)} and len(set(joins[:, 2])) == 2
    darkness[RAISED + 2 : BASELINE, [X, X + 47]] = 0.0
    assert faint_joins(darkness, shapes, PX_PER_MM).size == 0


def test_the_digitiser_keeps_a_raised_segment_its_faint_strokes_join_to_the_trace():
    """Without the page's darkness the segment touches no baseline corridor and is dropped
    like a lead label (ecg00013's V4 lost half its span); with it, it is the row's trace. The
    strokes' pixels themselves are not added."""
    darkness, ink = _lead_with_a_raised_segment()
    alone = assign_traces(ink, _page())[0]
    joined = assign_traces(ink, _page(), darkness)[0]
    raised = RAISED - joined.top
    assert not alone.own[raised, X : X + 48].any()
    assert joined.own[raised, X : X + 48].all()
    assert not joined.own[raised + 4 : BASELINE - joined.top, X].any()


def test_a_missed_pulses_top_reached_by_its_rise_alone_stays_out():
    """A pulse at the row's end that the layout reader missed (the row ends past it): its
    top is reached by its rise alone. The same shape mid-row is an ST segment whose
    downstroke was too faint even for this."""
    darkness, ink = _lead_with_a_raised_segment(fall=False)
    assert not assign_traces(ink, _page(end=X + 51), darkness)[0].own[RAISED, X : X + 48].any()
    assert assign_traces(ink, _page(), darkness)[0].own[RAISED, X : X + 48].all()


def test_paper_noise_and_a_grid_line_join_nothing():
    darkness, ink = _lead_with_a_raised_segment(stroke=0.03)  # as light as the paper's noise
    assert not assign_traces(ink, _page(), darkness)[0].own[RAISED, X : X + 48].any()
    darkness, ink = _lead_with_a_raised_segment(stroke=0.0)
    darkness[:, [X, X + 47]] = np.maximum(darkness[:, [X, X + 47]], FAINT)  # vertical grid lines
    assert not assign_traces(ink, _page(), darkness)[0].own[RAISED, X : X + 48].any()


def test_a_label_joined_by_a_faint_tick_stays_out_of_the_trace():
    """A lead label (under 4 mm) that a faint lead-change tick reaches stays out, as it is
    without the tick."""
    darkness, ink = _lead_with_a_raised_segment(stroke=0.0)
    darkness[RAISED - 2 : RAISED + 8, 240:250] = 0.9  # "V1": 2.5 mm wide, 2.5 mm tall
    darkness[RAISED + 8 : BASELINE, 245] = FAINT
    darkness[BASELINE : BASELINE + 2, X:380] = 0.9
    ink = darkness > 0.28
    own = assign_traces(ink, _page(), darkness)[0].own
    assert own[BASELINE, 20:380].all()
    assert not own[RAISED - 2 : RAISED + 8, 240:250].any()


def test_two_rows_traces_are_never_made_one():
    """A tall R wave whose faint top nears the row above: each row keeps its own trace."""
    darkness, ink = _lead_with_a_raised_segment(stroke=0.0)
    darkness[BASELINE : BASELINE + 2, X:380] = 0.9
    for y in range(BASELINE + 30, BASELINE + PITCH):  # row 2's R wave, 42 mm tall, slanted
        darkness[y, 300 + (y - BASELINE - 30) // 8] = 0.9
    darkness[BASELINE + 2 : BASELINE + 30, 300] = FAINT  # its faint top, up to row 1's baseline
    ink = darkness > 0.28
    first, second, _ = assign_traces(ink, _page(), darkness)
    assert first.traces is None and second.traces is None  # not one shape touching two corridors


def _lead_with_a_spike_tip(x: int, above: int = 16, width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A 3x4 page whose first row's R wave at column ``x`` left only its tip, 12 px (3 mm)
    tall and ``width`` px wide, ``above`` px over the baseline: its strokes faded to paper."""
    darkness, _ = _lead_with_a_raised_segment(stroke=0.0)
    darkness[RAISED : RAISED + 2] = 0.0
    darkness[BASELINE : BASELINE + 2, 20:380] = 0.9
    darkness[BASELINE - above - 12 : BASELINE - above, x : x + width] = 0.9
    return darkness, darkness > 0.28


@pytest.mark.parametrize("width", [1, 3])  # px; a tip 3 px wide is still a quarter as wide as tall
def test_a_spikes_tip_over_its_trace_is_read_with_it(width):
    """ecg00019 (a 640 px scan): R waves whose strokes fade to paper-white between the tip
    and the baseline were read as a flat line (lead II's R wave 0.28 mV instead of 1.3)."""
    darkness, ink = _lead_with_a_spike_tip(x=X, width=width)
    assert assign_traces(ink, _page(), darkness)[0].own[BASELINE - 20, X]
    assert not assign_traces(ink, _page())[0].own[BASELINE - 20, X]


def test_a_tip_at_a_lead_change_or_far_over_the_trace_is_not():
    """A thin mark at a lead change is its tick (or the label beside it); one 5 mm or more
    over the trace is not that trace's."""
    darkness, ink = _lead_with_a_spike_tip(x=200)  # the lead change at 5 s
    assert not assign_traces(ink, _page(), darkness)[0].own[BASELINE - 20, 200]
    darkness, ink = _lead_with_a_spike_tip(x=X, above=24)  # 6 mm over the baseline
    assert not assign_traces(ink, _page(), darkness)[0].own[BASELINE - 30, X]
