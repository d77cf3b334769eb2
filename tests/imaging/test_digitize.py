"""Following a row's trace (``digitize._trace_row``) on the edge cases real pages produce."""

from __future__ import annotations

import numpy as np

from ecgscreen.imaging.digitize import RowInk, _follow, _trace_row
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
