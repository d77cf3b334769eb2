"""Following a row's trace (``digitize._trace_row``) on the edge cases real pages produce."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscreen.imaging.digitize import RowInk, _follow, _trace_row, page_clock
from ecgscreen.imaging.layout import Row


def _two_touching_traces(height: int = 60, width: int = 200) -> np.ndarray:
    """Two rows' traces that cross (a crease or a tall QRS): what ``RowInk.traces`` holds."""
    ink = np.zeros((height, width), dtype=bool)
    x = np.arange(width)
    for centre in (20, 40):
        y = np.clip(np.round(centre + 12 * np.sin(x / 9.0)).astype(int), 0, height - 1)
        ink[y, x] = True
    return ink


def test_follow_answers_booleans_even_for_no_columns():
    has, first, last = _follow(np.zeros((30, 0), dtype=bool), 15.0, 2.0, 10.0, 5)
    assert has.dtype == bool and has.size == first.size == last.size == 0


def test_a_row_whose_ends_fall_off_the_picture_is_read_without_a_crash():
    """Regression (issue 21): a creased page cropped inside its frame had a row of touching
    traces (followed through ``RowInk.traces``) whose start, taken from the other rows, lay
    left of the picture: the row's slice was empty, ``_follow`` answered a float array for
    "has ink", and ``has & (total > 0)`` raised ``TypeError: ufunc 'bitwise_and' not
    supported``, which intake answered as `internal` and `preprocess` stopped the batch on."""
    traces = _two_touching_traces()
    ink = RowInk(top=0, own=traces.copy(), traces=traces)
    row = Row(intercept=20.0, slope=0.0, top=0, bottom=30, x_start=-3, x_end=150)
    darkness = traces.astype(np.float32)
    trace = _trace_row(ink, darkness, row, px_per_mm=4.0, pitch=30.0, label_zones=[0.0, 2.5])
    assert trace.x.size == trace.y.size  # nothing to read there, but no exception


def test_a_row_of_touching_traces_is_still_followed():
    traces = _two_touching_traces()
    ink = RowInk(top=0, own=traces.copy(), traces=traces)
    row = Row(intercept=20.0, slope=0.0, top=0, bottom=30, x_start=0, x_end=150)
    trace = _trace_row(ink, traces.astype(np.float32), row, px_per_mm=4.0, pitch=30.0, label_zones=[0.0])
    assert trace.x.size >= 150 and np.all(np.isfinite(trace.y))


def _page_of(ends: list[tuple[int, int]]):
    from ecgscreen.imaging.layout import PageLayout

    rows = [Row(100.0 + 150 * k, 0.0, 25 + 150 * k, 175 + 150 * k, a, b) for k, (a, b) in enumerate(ends)]
    return PageLayout("3x4+1", rows, 4.0, 10.0)


def test_a_flat_pages_rounded_row_ends_keep_a_straight_time_axis():
    """Whole-pixel row ends differ by a pixel from row to row; the projective map fitted to
    them bent clean pages' time by a few milliseconds (seed 4242 page 11: 10.9 dB unaligned
    SNR with it, 12.5 without). Such a page's clock is the straight axis between each row's ends."""
    page = _page_of([(100, 1100), (101, 1100), (100, 1101), (101, 1101)])
    clock = page_clock(page)
    for row in page.rows:
        x = np.linspace(row.x_start, row.x_end, 9)
        assert clock(row, x, row.baseline(x)) == pytest.approx(
            (x - row.x_start) * 10 / (row.x_end - row.x_start)
        )


def test_a_photos_perspective_bends_the_time_axis():
    """A page photographed from its left: its right side is further away, so the rows
    converge towards it and its right half is compressed. The projective map puts a row's
    middle tens of milliseconds from the straight axis's middle, as the flat page has it."""
    page = _page_of([(100, 1100)] * 4)
    for k, row in enumerate(page.rows):  # 150 px apart at the left, 110 px at the right
        left, right = 100.0 + 150 * k, 120.0 + 110 * k
        row.slope = (right - left) / 1000
        row.intercept = left - row.slope * 100
    clock = page_clock(page)
    row = page.rows[1]
    middle = np.array([600.0])
    assert float(clock(row, middle, row.baseline(middle))[0]) < 5.0 - 0.05


def test_a_rows_separators_are_its_time_knots():
    """Knots (t, x) from a row's separators: the clock passes through them, piecewise."""
    page = _page_of([(100, 1100), (100, 1100), (100, 1100), (100, 1100)])
    row = page.rows[0]
    row.knots = ((2.5, 352.0), (5.0, 601.0), (7.5, 849.5))
    clock = page_clock(page)
    x = np.array([100.0, 352.0, 601.0, 849.5, 1100.0])
    assert clock(row, x, row.baseline(x)) == pytest.approx([0.0, 2.5, 5.0, 7.5, 10.0])
    assert row.x_at(np.array([2.5, 5.0, 11.0])) == pytest.approx([352.0, 601.0, 1100 + 250.5 * 1 / 2.5])
