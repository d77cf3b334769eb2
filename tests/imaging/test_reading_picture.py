"""The reading picture (``imaging.reading_picture``) draws each sample where it was read."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscreen.imaging.digitize import page_clock
from ecgscreen.imaging.layout import PageLayout, Row
from ecgscreen.imaging.reading_picture import _columns_of_time


def _photographed_page() -> PageLayout:
    """Four rows 1000 px long seen from the page's left: 150 px apart there, 110 px at the
    right, so the right half is compressed (a keystone photo)."""
    rows = []
    for k in range(4):
        left, right = 100.0 + 150 * k, 120.0 + 110 * k
        slope = (right - left) / 1000
        rows.append(Row(left - slope * 100, slope, 25 + 150 * k, 175 + 150 * k, 100, 1100))
    return PageLayout("3x4+1", rows, 4.0, 10.0)


def test_a_photos_samples_are_drawn_where_the_perspective_clock_read_them():
    """The picture placed samples on the row's straight time axis while intake read them
    through the perspective clock: on ecg00046 (a photo) every QRS was drawn up to 0.1 s
    before the one printed, as if misread."""
    page = _photographed_page()
    clock = page_clock(page)
    row = page.rows[1]
    x_at = _columns_of_time(clock, row)
    t = np.linspace(0.0, 10.0, 41)
    x = x_at(t)
    assert clock(row, x, row.baseline(x)) == pytest.approx(t, abs=2e-3)
    straight = np.asarray(row.x_at(t), dtype=np.float64)
    assert np.abs(x - straight).max() > 4.0  # px: what the straight axis put elsewhere
    assert x[0] == pytest.approx(row.x_start, abs=0.05) and x[-1] == pytest.approx(row.x_end, abs=0.05)
