"""Lead-change separators (``imaging.separators``): the dashed and dotted lines carts print
where a row of leads changes lead are found to a fraction of a pixel, a QRS or a dotted grid
is not taken for one, and rows whose ends were misjudged (a pulse or label joined to the
trace: ecg00048 read every lead 0.5 s early) are placed in time by them."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.layouts import follows_recording
from ecgscreen.imaging import pipeline
from ecgscreen.imaging.layout import Row
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.imaging.separators import anchor_rows, find_separator
from ecgscreen.leads import layout_rows
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.printout import PageDesign
from ecgscreen.synth.scan import ScanArtefacts

PX_PER_MM = 4.0
REALWORLD = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"


def _band(height: int = 140, width: int = 1000) -> tuple[np.ndarray, Row]:
    """An empty row band with a flat trace along its middle, 10 s over 1000 px."""
    mask = np.zeros((height, width + 40), dtype=bool)
    mask[height // 2, 20 : 20 + width] = True
    return mask, Row(height / 2, 0.0, 0, height, 20, 20 + width)


def test_a_dotted_line_is_found_to_a_fraction_of_a_pixel():
    mask, row = _band()
    mask[5:135:4, 270:272] = True  # 2 px wide dots every mm, centred on 270.5 (t = 2.5 s)
    assert find_separator(mask, row, 2.5, PX_PER_MM) == pytest.approx(270.5, abs=0.25)


def test_a_qrs_cut_by_grid_lines_a_label_and_a_dotted_grid_are_not_separators():
    mask, row = _band()
    mask[10:130, 300] = True  # a deep QRS stroke at 2.8 s ...
    mask[10:130:4, 300] = False  # ... cut every millimetre where the grid was taken out
    mask[40:52, 280:290] = True  # a label
    assert find_separator(mask, row, 2.5, PX_PER_MM) is None
    mask, row = _band()
    mask[::4, ::4] = True  # a dotted grid left in the mask: every column alike
    mask[5:135:4, 270] = True
    assert find_separator(mask, row, 2.5, PX_PER_MM) is None


def _dotted_page(fmt: str = "png"):
    base = make_record(77, 5)
    design = PageDesign(trace_x0=22.0, separators="dotted")
    style = replace(base.style, layout="3x4+1", grid="red", gain=None, rhythm_leads=None, calibration=True,
                    labels="above", design=design)  # fmt: skip
    return replace(base, file_format=fmt, style=style, artefacts=ScanArtefacts(), dpi=150, colour="rgb")


def _read_with_ink(data: bytes, monkeypatch) -> tuple:
    """The reading and the inks its layout was found on (the trace mask, all ink)."""
    seen = {}
    find = pipeline.find_layout

    def keep(mask, pulse_ink=None, faint_pulse_ink=None):
        seen["inks"] = (mask, mask if pulse_ink is None else pulse_ink)
        return find(mask, pulse_ink, faint_pulse_ink)

    monkeypatch.setattr(pipeline, "find_layout", keep)
    return read_page(data), seen["inks"]


def test_a_pages_dotted_separators_lie_where_its_leads_change(monkeypatch):
    record = _dotted_page()
    reading, _ = _read_with_ink(encode_record(record), monkeypatch)
    assert reading.verdict.refusal is None and reading.info["layout"] == "3x4+1"
    rows = reading.page.layout.rows
    for row in rows[:3]:  # the rows of leads; the strip prints no lead change
        # 2.5 s apart to a fraction of a pixel, and a 2.5 s step from the trace's start
        assert len(row.separators) == 3
        spacing = np.diff(row.separators)
        assert abs(spacing[1] - spacing[0]) < 0.6
        assert row.separators[0] - row.x_start == pytest.approx(spacing.mean(), abs=1.5)
        assert [t for t, _ in row.knots] == [2.5, 5.0, 7.5]
    assert not rows[3].separators and not rows[3].knots
    assert follows_recording(reading, record) > 0.9


def test_rows_started_at_a_joined_pulse_are_placed_in_time_by_the_separators(monkeypatch):
    """The rows' ends as a reader sees them when each row's pulse and label join its trace
    (ecg00048): 0.45 s early at the start. The separators put them back, the strip too."""
    record = _dotted_page()
    reading, inks = _read_with_ink(encode_record(record), monkeypatch)
    layout = reading.page.layout
    truth = [(row.x_start, row.x_end) for row in layout.rows]
    second = (truth[0][1] - truth[0][0]) / 10
    rows = [
        replace(row, x_start=int(row.x_start - 0.45 * second), knots=(), separators=()) for row in layout.rows
    ]
    warnings = anchor_rows(inks, rows, layout_rows(layout.layout, layout.rhythm_leads), layout.px_per_mm)
    assert warnings == ["4 row(s) placed in time by their lead-change separators"]
    for row, (start, end) in zip(rows, truth, strict=True):
        assert abs(row.x_start - start) <= 0.03 * second and abs(row.x_end - end) <= 0.03 * second


def test_a_phone_photo_whose_pulses_were_not_found_starts_its_rows_at_the_separators():
    """ecg00048: a pulse, then the lead's label, then the trace; no pulse was measured, and
    every row was taken from its pulse's rise, 0.5 s early. Its dotted separators now place
    the rows: their 2.5 s lead changes on the dotted line, past the pulse and label."""
    reading = read_page((REALWORLD / "ecg00048.jpg").read_bytes())
    assert reading.verdict.refusal is None
    rows = reading.page.layout.rows
    assert any("placed in time by their lead-change separators" in w for w in reading.info["warnings"])
    for row in rows[:3]:
        assert len(row.separators) == 3
        assert float(row.x_at(2.5)) == pytest.approx(
            row.separators[0], abs=0.02 * (row.x_end - row.x_start) / 10
        )
        assert row.x_start > rows[0].x_start - 20 and row.x_start >= 60  # the pulses end by x = 50
