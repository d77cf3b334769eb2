"""The world's page designs (issue 21): pulses before, joined to, after or joined to the end
of the trace; headers, QR codes, barcodes, frames, dotted grids, the world's grid colours,
screenshots cropped below the third row. Each page is read with its layout, its pulse found
on every row, and no pulse in any lead's signal. (``python -m bench layouts`` runs the same
on hundreds of random pages.)"""

from dataclasses import replace

import numpy as np
import pytest

from bench.layouts import PRINTED, follows_recording
from ecgscreen.contract import SIGNAL_RATE_HZ
from ecgscreen.imaging.fidelity import signal_snr_db
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.leads import LEADS
from ecgscreen.synth.designs import draw_design
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.printout import PageDesign
from ecgscreen.synth.renditions import renditions_of
from ecgscreen.synth.scan import ScanArtefacts


def _page(
    design: PageDesign, layout: str = "3x4+1", grid: str = "red", fmt: str = "png", labels: str = "above"
):
    base = make_record(77, 5)
    style = replace(base.style, layout=layout, grid=grid, gain=None, rhythm_leads=None, calibration=True,
                    labels=labels, design=design)  # fmt: skip
    return replace(base, file_format=fmt, style=style, artefacts=ScanArtefacts(), dpi=150, colour="rgb")


DESIGNS = {
    "pulse joined to the trace": PageDesign(trace_x0=22.0, pulse="joined", separators="none"),
    "pulse after the trace": PageDesign(trace_x0=14.0, pulse="end", separators="dashed"),
    "pulse joined to the trace's end": PageDesign(trace_x0=14.0, pulse="end-joined", separators="gap"),
    "header, QR code, barcode, frame": PageDesign(
        grid_box=(8.0, 36.0, 289.0, 200.0),
        trace_x0=26.0,
        frame=True,
        furniture=("measurements", "interpretation", "device", "footer", "qr", "barcode"),
        seed=3,
    ),  # fmt: skip
    "Letter, dotted grid, thick trace": PageDesign(
        paper="Letter", grid_box=(4.0, 20.0, 276.0, 210.0), trace_x0=18.0, minor="dotted", trace_mm=0.45
    ),
}


@pytest.mark.parametrize("name", list(DESIGNS))
def test_a_designed_page_is_read_with_its_layout_and_its_pulses(name):
    record = _page(DESIGNS[name])
    reading = read_page(encode_record(record))
    assert reading.verdict.refusal is None, reading.verdict.refusal
    assert reading.info["layout"] == "3x4+1"
    assert all(row.calibrated for row in reading.page.layout.rows), name
    # Every row read from its trace, not its pulse: the first 0.3 s of each row's first lead
    # and the last 0.3 s of its last follow the recording (a pulse read as trace is a 1 mV
    # step the recording lacks).
    truth, values = record.signal, reading.signal.values
    rate = truth.shape[1] / values.shape[1]
    edge = int(0.3 * values.shape[1] / 10)
    for i, lead in enumerate(LEADS):
        printed = np.flatnonzero(np.isfinite(values[i]))
        ends = [at for at in (printed[:edge], printed[-edge:]) if at[0] == 0 or at[-1] >= values.shape[1] - 2]
        for at in ends:
            read = values[i, at] - np.median(values[i, printed])
            true = truth[i, (at * rate).astype(int)] - np.median(truth[i, (printed * rate).astype(int)])
            assert np.median(np.abs(read - true)) < 0.3, f"{name}: {lead} strays from the recording"


@pytest.mark.parametrize("grid", ["orange", "blue", "grey", "black"])
def test_the_worlds_grid_colours_are_read(grid):
    reading = read_page(encode_record(_page(PageDesign(), grid=grid, fmt="jpeg")))
    assert reading.verdict.refusal is None and reading.info["layout"] == "3x4+1"


def test_a_screenshot_cropped_below_the_third_row_is_a_3x4_page():
    base = make_record(77, 5)
    design = draw_design(np.random.default_rng(4), replace(base.style, layout="3x4"))
    while design.crop_mm is None:  # draw until the screenshot is cropped
        design = draw_design(np.random.default_rng(int(design.seed)), replace(base.style, layout="3x4"))
    record = _page(replace(design, pulse="start", trace_x0=max(design.trace_x0, design.grid_box[0] + 12)),
                   layout="3x4")  # fmt: skip
    reading = read_page(encode_record(record))
    assert reading.info["layout"] == "3x4"
    assert reading.verdict.refusal is None


def test_a_framed_vector_pdf_with_a_black_grid_is_read_exactly():
    """A dark grid's rules and the page's frame are straight lines as dark as the trace: they
    are neither rows nor part of any lead."""
    design = replace(DESIGNS["header, QR code, barcode, frame"], pulse="joined", trace_x0=20.0)
    record = _page(design, layout="12x1", grid="black", fmt="pdf")
    reading = read_page(encode_record(record))
    assert reading.info["layout"] == "12x1" and reading.verdict.refusal is None
    snr = signal_snr_db(record.signal, SIGNAL_RATE_HZ, reading.signal)
    assert min(snr.values()) > 40.0, snr
    # The Challenge's SNR (no shift, no offset removed): each row's 0 mV line is its pulse's
    # foot as drawn (a baseline fitted on a raster of the page was off by ~0.02 mV: 21 dB).
    strict = signal_snr_db(record.signal, SIGNAL_RATE_HZ, reading.signal, aligned=False)
    assert min(strict.values()) > 40.0, strict


def test_a_photo_on_a_dark_desk_is_read_without_the_desk():
    """What lies around a photographed page (a dark desk, a phone beside the page, the page's
    edge against it) is not trace: the page is read with its layout."""
    photo = ScanArtefacts(kind="photo", rotation_deg=1.5, page_scale=0.8, background=(60, 60, 65), blur_px=0.6,
                          noise_sd=3.0, objects=((0.0, 0.9, 0.07, 1.0, 20.0, 20.0, 25.0),), seed=5)  # fmt: skip
    record = replace(_page(PageDesign(), fmt="jpeg"), artefacts=photo)
    reading = read_page(encode_record(record))
    assert reading.info["layout"] == "3x4+1" and reading.verdict.refusal is None


@pytest.mark.parametrize("index", [1, 3, 5])
def test_six_rows_without_lead_change_marks_are_a_6x2_page(index):
    """A vector 6x2 page with no separators carries no marks to count: its bottom rows
    change lead at 5 s, where a 3x4+3 page's strips are one lead all along (neighbouring
    leads alone repeat each other's windows)."""
    base = _page(PageDesign(separators="none", trace_x0=22.0), layout="6x2", fmt="pdf")
    record = replace(base, signal=make_record(91, index).signal)
    assert read_page(encode_record(record)).info["layout"] == "6x2"


@pytest.mark.parametrize("layout", ["12x1", "6x2"])
def test_a_pulse_under_its_rows_label_is_found(layout):
    """With t = 0 printed 22 mm in, the first lead's label (printed at the page's left
    edge) runs into the pulse's rise; the label's strokes neither hide nor widen it."""
    record = _page(PageDesign(trace_x0=22.0, pulse="start", separators="none"), layout=layout, grid="grey")
    reading = read_page(encode_record(record))
    assert reading.info["layout"] == layout
    rows = reading.page.layout.rows
    _assert_every_pulse_measured(rows)


def test_a_6x2_scan_whose_labels_are_lost_is_not_read_as_3x4_plus_3():
    """A grey-grid scan where no lead label or tick survives the threshold: the bottom rows
    (aVR|V4, aVL|V5, aVF|V6) each match the V3 window about as well as a strip matches its
    lead, but the top rows print one lead over their first 5 s, which a 3x4 page never does
    (``bench layouts``, seed 97, page 90, was read as 3x4+3 with every lead "read")."""
    record = make_record(97, 90, formats=PRINTED)
    assert record.style.layout == "6x2" and record.artefacts.kind == "scan"
    assert read_page(encode_record(record)).info["layout"] == "6x2"


def test_a_vector_pdf_with_gaps_at_its_lead_changes_is_read_exactly():
    """Gaps a cart leaves at each lead change do not stretch the row's time axis (it was a
    sample long, and a V5 strip then matched V5's print too roughly to be named). The 20 ms
    left out at each change hold the lead's first or last value: 30 dB, not exact."""
    record = _page(PageDesign(trace_x0=26.0, separators="gap"), fmt="pdf")
    record = replace(record, style=replace(record.style, rhythm_leads=("V5",)))
    reading = read_page(encode_record(record))
    assert reading.info["rhythm_leads"] == ["V5"]
    snr = signal_snr_db(record.signal, SIGNAL_RATE_HZ, reading.signal)
    assert min(snr.values()) > 30.0, snr


def test_rows_whose_labelled_run_starts_early_take_their_ends_from_the_calibrated_rows():
    """A clean 6x2+1 page printing each row's label beside its pulse: on five rows label,
    pulse and trace join into one run of ink that starts 0.3 s early, on two the pulse is
    measured and the trace starts after it. The two measured rows set t = 0 for all seven
    (``bench layouts``, seed 4242, page 235: the five were the majority and moved the
    measured rows onto the label; every lead read 0.3 s late, correlation 0.07)."""
    record = make_record(4242, 235, formats=PRINTED)
    assert record.style.layout == "6x2+1" and record.artefacts.kind == "clean"
    reading = read_page(encode_record(record))
    assert reading.verdict.refusal is None
    assert follows_recording(reading, record) > 0.8
    assert any("ran on past the others" in warning for warning in reading.info["warnings"])


def test_a_pulse_printed_apart_but_bridged_to_the_trace_is_cut_where_the_trace_starts():
    """A scan whose dotted grid leaves a dash across the 2 mm between pulse and trace: the
    pulse reads as joined to the trace, and the trace starts after the gap, not 1 mm past the
    pulse's fall (``bench layouts``, seed 4242, page 30: every row 0.1 s early, its leads'
    correlation with the recording 0.15)."""
    record = make_record(4242, 30, formats=PRINTED)
    assert record.style.design.pulse == "start" and record.artefacts.kind == "scan"
    reading = read_page(encode_record(record))
    assert reading.verdict.refusal is None
    assert follows_recording(reading, record) > 0.8
    starts = [row.x_start for row in reading.page.layout.rows]
    assert max(starts) - min(starts) <= 0.02 * (reading.page.layout.rows[0].x_end - starts[0])


def _assert_every_pulse_measured(rows) -> None:
    """Every row calibrated on a pulse 0.2 s of its time wide (within 10 %)."""
    assert all(row.calibrated for row in rows)
    assert all(0.9 <= row.pulse_ratio <= 1.1 for row in rows), [row.pulse_ratio for row in rows]


def test_a_pulse_on_a_curled_photo_is_found_where_the_baseline_bends():
    """Paper curling up at the page's edge bends each row's baseline: at the pulse it lay
    2-3 mm off the straight line fitted over the row's 10 s, so the pulse's rise did not
    "stand on the baseline" and was missed on every row; the rows then started at the pulse
    and every lead was read 0.25 s late (``bench layouts``, seed 4242, page 254, accepted
    with correlation 0.07). The baseline is now fitted on the trace's first second."""
    record = make_record(4242, 254, formats=PRINTED)
    assert record.artefacts.kind == "photo" and record.style.design.pulse == "joined"
    reading = read_page(encode_record(record))
    rows = reading.page.layout.rows
    _assert_every_pulse_measured(rows)


@pytest.mark.parametrize("index", [142, 202, 17, 197])
def test_a_pulse_the_segmenter_calls_grid_is_found(index):
    """On clean pages (``bench layouts``, seed 4242) the page segmenter gives pulses to the
    grid, and intake dropped them with it: a rise on a major grid line (142, green; 202, red),
    a thin pulse after the trace (17, red, 0.15 mm pen at 300 dpi) or one apart from the
    trace with no grid at all (197). Pulses are measured on the ink before those drops."""
    record = make_record(4242, index, formats=PRINTED)
    assert record.artefacts.kind == "clean"
    rows = read_page(encode_record(record)).page.layout.rows
    _assert_every_pulse_measured(rows)


def test_a_pulse_the_segmenter_kept_a_stub_of_is_measured_on_all_its_ink():
    """A clean page (``bench layouts``, seed 97, page 69): each pulse's rise and plateau lie
    on red grid lines, and the segmenter kept only its fall and foot. That stub was the run
    of ink before the trace, and the pulse was looked for in its columns alone; the whole
    pulse, on the ink before the segmenter's drops, is tried next."""
    record = make_record(97, 69, formats=PRINTED)
    assert record.artefacts.kind == "clean" and record.style.design.pulse == "start"
    rows = read_page(encode_record(record)).page.layout.rows
    _assert_every_pulse_measured(rows)


def test_pulses_of_neighbouring_rows_a_pixel_apart_are_measured_each():
    """A 12x1 scan with its pulses joined to the rows' ends (``bench layouts``, seed 97, page
    22): each 10 mm pulse's plateau lies a pixel under the foot of the pulse above, and the
    shape joined across one-pixel gaps held both. No pulse was found, the rows ran on over
    them (0.36 s) and the page was accepted misread (correlation 0.11)."""
    record = make_record(97, 22, formats=PRINTED)
    assert record.style.layout == "12x1" and record.style.design.pulse == "end-joined"
    reading = read_page(encode_record(record))
    rows = reading.page.layout.rows
    _assert_every_pulse_measured(rows)
    assert follows_recording(reading, record) > 0.8


@pytest.mark.parametrize("index", [30, 44, 169])
def test_a_rows_pulse_is_found_where_the_pages_other_pulses_are(index):
    """Scans (``bench layouts``, seed 4242) where one row's label, pulse and trace ran into
    one stretch of ink: the row started at the label, too far from the pulse to take it for
    one joined to the trace, and its pulse was missed while the other rows had theirs. Once
    that row's ends are the page's, its pulse is looked for just before its start (and
    after its end)."""
    record = make_record(4242, index, formats=PRINTED)
    assert record.artefacts.kind == "scan"
    assert all(row.calibrated for row in read_page(encode_record(record)).page.layout.rows)


@pytest.mark.parametrize("index", [54, 288])
def test_a_thin_pens_faint_pulses_are_found(index):
    """12x1 JPEG scans at 96-100 dpi (``bench layouts``, seed 4242): the pulses, drawn a pixel
    wide and anti-aliased over two columns, come out at half the trace's darkness, under the
    ink threshold the trace sets; a row's pulse was found on one row of twelve (page 54) or
    none (288, read at the standard gain). A row whose pulse is not found is looked at again
    on fainter ink (``ink.faint_ink``)."""
    record = make_record(4242, index, formats=PRINTED)
    assert record.artefacts.kind == "scan" and record.style.layout == "12x1"
    _assert_every_pulse_measured(read_page(encode_record(record)).page.layout.rows)


def test_a_pulse_foot_off_its_rows_line_on_a_curled_photo_does_not_set_its_0_mv():
    """A 12x1 phone photo (``bench digitize``, seed 501, record 8): its rows bend by up to
    2 mm along their length (a curl its blurred 96 dpi grid does not show), and each pulse's
    foot lies 1-1.5 mm off the line fitted along its row's trace. A straight line through
    the foot put every lead 0.2-0.35 mV high; the rows keep the fitted line (and their
    pulses' gain)."""
    record, files = renditions_of(501, 8, ("png/photo",))
    assert record.style.layout == "12x1"
    reading = read_page(files["png/photo"])
    assert sum(row.calibrated for row in reading.page.layout.rows) >= 10
    values = reading.signal.values
    at = np.arange(values.shape[1]) * record.signal.shape[1] // values.shape[1]
    offsets = [np.nanmedian(values[i] - record.signal[i, at]) for i in range(len(LEADS))]
    assert np.median(np.abs(offsets)) < 0.1, np.round(offsets, 2)


@pytest.mark.parametrize("index", [53, 235])
def test_a_pulse_crossed_by_a_grid_lines_remnant_is_found(index):
    """Clean red-grid pages with heavy major lines (``bench layouts``, seed 4242): bits of the
    lines at 0 and 0.5 mV survive the colour discount beside the dark pen and cross the
    pulse, so no column under its plateau was a pen's width from first to last ink. The
    plateau is judged by each column's topmost stroke."""
    record = make_record(4242, index, formats=PRINTED)
    assert record.artefacts.kind == "clean" and record.style.grid == "red"
    assert all(row.calibrated for row in read_page(encode_record(record)).page.layout.rows)


def test_a_step_of_no_cart_gain_is_not_taken_for_the_pulse():
    """A clean 12x1 page at 10 mm/mV (``bench layouts``, seed 4242, page 269): one row's
    "pulse" measured 3.3 mm/mV, and with no other row calibrated the whole page was read
    three times too large, every lead "read". A pulse is one of the gains carts print."""
    record = make_record(4242, 269, formats=PRINTED)
    assert record.style.layout == "12x1" and record.style.gain_mm_per_mv == 10.0
    reading = read_page(encode_record(record))
    assert abs(reading.info["gain_mm_per_mv"] / 10.0 - 1) <= 0.22
    truth, values = record.signal, reading.signal.values
    read = [i for i, lead in enumerate(LEADS) if reading.verdict.leads[lead].status == "read"]
    size = [np.nanstd(values[i]) / np.std(truth[i]) for i in read]
    assert 0.7 <= np.median(size) <= 1.4, size


def test_a_blurred_photos_one_measured_pulse_places_the_rows_its_labels_lengthened():
    """A blurred photo (``bench layouts``, seed 97, page 39): each row's label, pulse and
    trace joined into one run of ink, 0.4 s longer than the trace. The first row's pulse
    stands apart, but its baseline could not be fitted on the trace's first second (no
    column of the blurred stroke was 3 px or thinner), the row's 10 s line lay 4 mm off the
    pulse's foot, and no pulse was found: every row started at its label, every lead read
    0.2-0.3 s late and stretched, accepted with all 12 leads "read" and correlation 0.01
    with the recording. Now the baseline is also fitted on the blurred pen's own width, the
    one measured row sets where t = 0 lies for rows longer by a label and pulse, and the
    rows follow the paper (correlation 0.36: the first row's trace is still read poorly)."""
    record = make_record(97, 39, formats=PRINTED)
    assert record.artefacts.kind == "photo" and record.style.layout == "3x4+1"
    reading = read_page(encode_record(record))
    rows = reading.page.layout.rows
    assert sum(row.calibrated for row in rows) >= 2
    starts = [row.x_start for row in rows]
    assert max(starts) - min(starts) <= 2 and min(starts) > 40, starts  # past the labels (x 10-24)
    assert follows_recording(reading, record) > 0.3
