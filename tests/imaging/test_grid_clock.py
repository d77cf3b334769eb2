"""Rows timed along the grid printed under them (``imaging.grid_clock``)."""

from dataclasses import replace

import numpy as np
import pytest

from bench.layouts import PRINTED, follows_recording
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.grid_clock import KNOT_TIMES, check_row_length, row_bend, time_rows_on_grid
from ecgscreen.imaging.layout import Row
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.scan import ScanArtefacts

PX_PER_MM = 4.0


def _grid_page(paper_mm_of_column, width: int = 1200, height: int = 160, major_only: bool = False):
    """A darkness map (uint8) of vertical grid lines at every paper millimetre (or 5 mm),
    columns placed by ``paper_mm_of_column``, with a trace-like stroke across the band."""
    columns = np.arange(width, dtype=np.float64)
    mm = paper_mm_of_column(columns)
    step = 5.0 if major_only else 1.0
    distance = np.abs((mm / step) - np.round(mm / step)) * step * PX_PER_MM  # px to the nearest line
    line = np.clip(1.0 - distance, 0.0, 1.0) * 60.0
    major = np.abs((mm / 5.0) - np.round(mm / 5.0)) * 5.0 * PX_PER_MM < 1.0
    grid = np.tile(line + 40.0 * major * line / 60.0, (height, 1))
    trace_rows = (height // 2 + 12 * np.sin(columns / 9.0)).astype(int)
    grid[trace_rows, np.arange(width)] = 255.0
    return grid.astype(np.uint8)


def _row(x_start: int = 100, x_end: int = 1100) -> Row:
    return Row(intercept=80.0, slope=0.0, top=0, bottom=160, x_start=x_start, x_end=x_end)


def test_a_flat_pages_grid_keeps_the_rows_straight():
    grid = _grid_page(lambda x: (x - 100) / PX_PER_MM)
    np.testing.assert_allclose(row_bend(grid, _row()), 0.0, atol=0.002)
    rows = [_row(), _row()]
    warnings, length = time_rows_on_grid(grid, rows)
    assert warnings == [] and length == pytest.approx(10.0, abs=0.01)
    times, xs = rows[0].time_knots()
    np.testing.assert_allclose(xs, 100 + 100 * times, atol=1e-9)
    assert len(rows[0].knots) == len(KNOT_TIMES)


def _perspective_mm(x):
    """Paper millimetres of column ``x``: 250 mm between columns 100 and 1100, the left end
    seen further away (compressed), so millimetres grow faster per column there."""
    u = (x - 100) / 1000
    return 250 * (u + 0.03 * u * (1 - u))


@pytest.mark.parametrize("major_only", [False, True])
def test_a_row_in_perspective_is_timed_by_its_grid(major_only):
    """The knots put each half second where the grid does, to a fifth of a pixel; a
    straight axis between the ends is off by ~7 px (75 ms) in the middle."""
    rows = [_row(), _row()]
    warnings, _ = time_rows_on_grid(_grid_page(_perspective_mm, major_only=major_only), rows)
    assert warnings == ["2 row(s) timed along the grid under them (the page is seen in perspective)"]
    columns = np.arange(1200.0)
    want = np.interp(KNOT_TIMES * 25, _perspective_mm(columns), columns)
    times, xs = np.array(rows[1].knots).T
    np.testing.assert_allclose(xs, want, atol=0.2)
    assert np.max(np.abs(want - (100 + 100 * times))) > 5


def test_one_rows_misread_grid_does_not_bend_the_page():
    """The page's bend is its rows' median: one row read bent among flat ones is flat."""
    flat, bent = _grid_page(lambda x: (x - 100) / PX_PER_MM), _grid_page(_perspective_mm)
    rows = [_row() for _ in range(3)]
    grids = [flat, bent, flat]
    page = np.concatenate(grids, axis=0)
    for i, row in enumerate(rows):
        row.top, row.bottom = 160 * i, 160 * (i + 1)
    assert row_bend(bent, _row()) is not None and np.max(np.abs(row_bend(bent, _row()))) > 0.05
    assert time_rows_on_grid(page, rows)[0] == []
    times, xs = rows[1].time_knots()
    np.testing.assert_allclose(xs, 100 + 100 * times, atol=1e-9)


def test_no_grid_or_a_grid_that_disagrees_with_the_rows_ends_gives_no_knots():
    blank = np.zeros((160, 1200), dtype=np.uint8)
    assert row_bend(blank, _row()) is None
    rows = [_row(), _row()]
    assert time_rows_on_grid(blank, rows) == ([], None) and rows[0].knots == ()
    # A grid of 250 mm over 1000 px, but the row's ends 10 % apart from that: not trusted.
    assert row_bend(_grid_page(lambda x: (x - 100) / PX_PER_MM), _row(100, 1000)) is None


def test_rows_spanning_more_than_5_percent_off_10_s_of_their_grid_are_refused():
    check_row_length(None)
    check_row_length(10.4)
    with pytest.raises(IntakeError) as refused:
        check_row_length(10.6)
    assert refused.value.reason == "no_layout" and "10.6 s of the grid" in refused.value.message


@pytest.mark.parametrize("kind", ["clean", "photo"])
def test_a_page_is_read_on_time_where_its_baselines_slant(kind):
    """``bench layouts`` seed 97 page 54 (3x4, Letter, 122 bpm): its rows' baselines,
    fitted through four leads' isoelectric lines, slant by a millimetre over the row. The
    projective map fitted to them bent the clean page's rows by 66 ms (every lead read 30-60
    ms late, correlation 0.5-0.8 at no shift) and took the photo's real keystone (1.2 %) for
    flat (read 30-75 ms late: accepted misread, 0.25). The grid under the rows times them."""
    record = make_record(97, 54, formats=PRINTED)
    if kind == "clean":
        record = replace(record, artefacts=ScanArtefacts())
    assert record.artefacts.kind == kind
    reading = read_page(encode_record(record))
    assert reading.verdict.refusal is None
    assert follows_recording(reading, record) > 0.9
