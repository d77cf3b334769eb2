"""The rows' 0 mV line along the grid printed under them (``imaging.grid_level``)."""

import numpy as np
import pytest

from ecgscreen.contract import SIGNAL_RATE_HZ
from ecgscreen.imaging.grid_level import level_rows_on_grid, row_curvature
from ecgscreen.imaging.layout import Row
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.leads import LEADS
from ecgscreen.synth.renditions import renditions_of

PX_PER_MM = 4.0
WIDTH, HEIGHT = 1200, 160


def _bent_grid(depth_px: float, major_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A darkness map (uint8) of horizontal grid lines every millimetre (or 5 mm), raised by
    ``depth_px`` in the middle of columns 100..1100 against their ends (a parabola), and the
    mask of a trace-like stroke across it."""
    x = np.arange(WIDTH, dtype=np.float64)
    lift = depth_px * (1 - ((x - 600) / 500) ** 2)
    y = np.arange(HEIGHT, dtype=np.float64)[:, None] + lift[None, :]  # paper row of each pixel
    step = (5.0 if major_only else 1.0) * PX_PER_MM
    distance = np.abs(y / step - np.round(y / step)) * step
    grid = np.clip(1.0 - distance, 0.0, 1.0) * 80.0
    trace = np.zeros((HEIGHT, WIDTH), dtype=bool)
    trace[(HEIGHT // 2 + 12 * np.sin(x / 9.0)).astype(int), np.arange(WIDTH)] = True
    grid[trace] = 255.0
    return grid.astype(np.uint8), trace


def _row(anchor_x: float | None = None) -> Row:
    return Row(intercept=80.0, slope=0.0, top=0, bottom=HEIGHT, x_start=100, x_end=1100, anchor_x=anchor_x)


def _depth(curvature: float) -> float:
    return curvature * 1000**2 / 4  # the bend over the row, end to middle, in px


def test_a_flat_grid_leaves_the_rows_straight():
    grid, trace = _bent_grid(0.0)
    assert abs(_depth(row_curvature(grid, trace, _row()))) < 0.1
    rows = [_row(), _row()]
    assert level_rows_on_grid(grid, trace, rows) == []
    assert rows[0].bend is None and rows[0].baseline(np.array([600.0]))[0] == 80.0


@pytest.mark.parametrize("major_only", [False, True])
def test_a_bent_grid_bends_the_rows_baseline_with_it(major_only):
    """Lines raised 6 px in the middle (a curl): the row's 0 mV line rises with them, with no
    offset or slope of its own over the row."""
    grid, trace = _bent_grid(6.0, major_only)
    assert _depth(row_curvature(grid, trace, _row())) == pytest.approx(6.0, abs=0.3)  # y grows down
    rows = [_row(), _row()]
    assert level_rows_on_grid(grid, trace, rows) == [
        "2 row(s) levelled along the grid under them (the paper is bent)"
    ]
    x = np.arange(100.0, 1101.0)
    baseline = rows[0].baseline(x)
    assert baseline[500] - baseline[0] == pytest.approx(-6.0, abs=0.3)  # image rows: up is less
    assert abs(baseline.mean() - 80.0) < 0.05 and abs(np.polyfit(x, baseline, 1)[0]) < 1e-4


def test_a_pulses_foot_stays_where_it_was_measured():
    grid, trace = _bent_grid(6.0)
    rows = [_row(anchor_x=60.0), _row(anchor_x=60.0)]
    level_rows_on_grid(grid, trace, rows)
    assert rows[0].bend is not None
    assert rows[0].baseline(np.array([60.0]))[0] == pytest.approx(80.0, abs=1e-9)


def test_no_grid_no_bend():
    blank = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    assert row_curvature(blank, blank.astype(bool), _row()) is None
    rows = [_row(), _row()]
    assert level_rows_on_grid(blank, blank.astype(bool), rows) == [] and rows[0].bend is None


def _median_lead_offset_mv(seed: int, index: int, rendition: str) -> tuple[float, list[str]]:
    record, files = renditions_of(seed, index, (rendition,))
    reading = read_page(files[rendition])
    signal, t = reading.signal, np.arange(record.signal.shape[1]) / SIGNAL_RATE_HZ
    offsets = []
    for i, lead in enumerate(LEADS):
        if lead in signal.spans:
            start, end = signal.spans[lead]
            k = np.arange(int(np.ceil(start * signal.sample_rate)), int(np.ceil(end * signal.sample_rate)))
            k = k[k < signal.values.shape[1]]
            truth = np.interp(k / signal.sample_rate, t, record.signal[i])
            offsets.append(np.nanmedian(signal.values[i, k] - truth))
    return float(np.median(np.abs(offsets))), reading.info["warnings"]


@pytest.mark.parametrize("index", [5, 9])
def test_a_curled_photos_leads_keep_their_0_mv_line(index):
    """``bench digitize`` seed 501, pages 5 (3x4+1) and 9 (6x2) photographed curled: their
    grid's lines bend 5-8 px over a row, and the straight baselines through the pulses' feet
    put the leads' 0 mV 0.14 and 0.17 mV off (median over the leads); levelled along the
    grid, 0.01-0.03 mV."""
    offset, warnings = _median_lead_offset_mv(501, index, "png/photo")
    assert any("levelled along the grid" in w for w in warnings)
    assert offset < 0.05
