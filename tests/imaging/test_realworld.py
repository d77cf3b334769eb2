"""The real-world dev pictures (``tests/fixtures/realworld``): what intake reads of each today.

The goal (issue 21): every picture holding all 12 leads is accepted with the layout a person
labelled, and a picture without all 12 leads (``ecg00008.jpg``) is refused. The pictures not
read that way yet are strict xfails whose reason is today's outcome (measured with ``python -m
bench realworld``): when one starts passing, the xfail fails and its line here is updated.
"""

import csv
from pathlib import Path

import numpy as np
import pytest

from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import read_page

DEV_SET = Path(__file__).resolve().parents[1] / "fixtures" / "realworld"
with (DEV_SET / "labels.csv").open(newline="") as f:
    LABELS = {row["file"]: row for row in csv.DictReader(f)}

# Today's outcome of the full 12-lead pictures that are not yet read with their layout.
NOT_YET = {
    "ecg00030.jpg": "refused unreadable, read by colour alone as 3x4, 4 of 12 leads (keystone photo, footer over the strip)",
}
FULL = [name for name, row in LABELS.items() if row["is_full_12lead"] == "yes"]


def _outcome(name: str) -> tuple[str, str | None, list[str]]:
    """``("accepted" or the refusal reason, layout found, rhythm leads found)``."""
    try:
        reading = read_page((DEV_SET / name).read_bytes())
    except IntakeError as error:
        return error.reason, None, []
    refusal = reading.verdict.refusal
    return (
        ("accepted" if refusal is None else refusal.reason),
        reading.info["layout"],
        reading.info["rhythm_leads"],
    )


def test_the_dev_set_is_complete():
    assert len(LABELS) == 20 and len(FULL) == 19
    assert set(NOT_YET) <= set(FULL)
    for name in LABELS:
        assert (DEV_SET / name).is_file(), name
    assert (DEV_SET / "LICENSE-ECG-Image-Kit.txt").is_file()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[n])) if n in NOT_YET else n
        for n in FULL
    ],
)
def test_a_full_12_lead_picture_is_accepted_with_its_labelled_layout(name):
    outcome, layout, rhythm_leads = _outcome(name)
    label = LABELS[name]
    assert (outcome, layout) == ("accepted", label["layout"])
    assert rhythm_leads == [lead for lead in label["rhythm_leads"].split(";") if lead]


def test_the_faint_mortara_export_is_read_by_colour_alone_with_every_lead():
    """ecg00010 (= ecg00014): a thin grey pen in a 768 px export, which the segmenter calls grid."""
    reading = read_page((DEV_SET / "ecg00010.png").read_bytes())
    assert reading.verdict.refusal is None and len(reading.verdict.named("read")) == 12
    assert any("read by colour alone" in w for w in reading.info["warnings"])


def test_the_two_lead_fragment_is_refused():
    outcome, _, _ = _outcome("ecg00008.jpg")
    assert outcome != "accepted"


def test_a_carts_0_1_s_pulse_calibrates_its_row():
    """ecg00048's cart prints a 1 mV pulse 0.1 s wide (half a large square), where most
    print 0.2 s: its rhythm strip's pulse is measured (width half of 0.2 s of the row) and
    gives the page its gain, about the 10 mm/mV the cart prints."""
    reading = read_page((DEV_SET / "ecg00048.jpg").read_bytes())
    measured = [row for row in reading.page.layout.rows if row.calibrated]
    assert measured and all(0.4 <= row.pulse_ratio <= 0.6 for row in measured)
    assert abs(reading.info["gain_mm_per_mv"] / 10.0 - 1) <= 0.1


def test_rows_whose_pulse_the_pictures_edge_cut_start_where_the_measured_rows_do():
    """ecg00002 (3x4+3): the picture's left edge cuts the pulses of every other row, so those
    rows' ink started 0.26 s before the rows whose pulse was measured (2.6 %, inside the 3 %
    rows may differ by), and lead II's first 0.22 s was its pulse, a 1 mV plateau, read."""
    reading = read_page((DEV_SET / "ecg00002.png").read_bytes())
    rows = reading.page.layout.rows
    assert max(row.x_start for row in rows) - min(row.x_start for row in rows) <= 2
    lead_ii = reading.signal.values[1, : int(0.3 * reading.signal.sample_rate)]
    assert not (abs(lead_ii - 1.0) < 0.1).sum() > 0.1 * reading.signal.sample_rate


def test_a_small_scans_faint_qrs_strokes_keep_its_raised_st_segments_in_the_lead():
    """ecg00013 (a 1024 px scan, thin pen): V4's QRS strokes are as light as the grid, so its
    elevated ST segments floated apart from the baseline and were dropped (53 % of the lead
    read, "missing"). Joined by their faint strokes (``faint_strokes``), 71 % is read; the
    calibration pulse at the row's end, which the layout reader misses, stays out of V5."""
    reading = read_page((DEV_SET / "ecg00013.jpg").read_bytes())
    assert reading.verdict.to_dict()["V4"]["status"] == "read"
    assert len(reading.verdict.named("read")) >= 11
    signal = reading.signal
    rate = signal.sample_rate
    v4 = signal.lead("V4")[int(signal.spans["V4"][0] * rate) : int(signal.spans["V4"][1] * rate)]
    assert np.isfinite(v4).mean() > 0.65 and np.nanmax(v4) > 0.5  # the ST segments, up to ~1 mV
    v5 = signal.lead("V5")[int((signal.spans["V5"][1] - 0.3) * rate) : int(signal.spans["V5"][1] * rate)]
    assert np.nanmax(v5) < 0.5  # no 1 mV pulse plateau at its end


def test_a_small_scans_spike_tips_are_read_with_their_leads():
    """ecg00019 (a 640 px BMP scan): some R and S waves fade to paper-white between their
    tips and the baseline. Their tips are read with the trace under them (``spike_tips``):
    lead II's second R wave (1.3 mV; read before as 0.28) and V1's S waves (-0.77; -0.14)."""
    reading = read_page((DEV_SET / "ecg00019.bmp").read_bytes())
    signal = reading.signal
    rate = signal.sample_rate

    def printed(lead: str) -> np.ndarray:
        start, end = signal.spans[lead]
        return signal.lead(lead)[int(start * rate) : int(end * rate)]

    assert np.nanmax(printed("II")) > 1.0 and np.nanmin(printed("V1")) < -0.5
    assert reading.verdict.refusal is None
