"""Every file becomes a 12-lead signal: printing variants read right, vector PDFs read exactly,
and the Challenge's SNR metric behaves as it is defined."""

from __future__ import annotations

import io
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from PIL import Image

from ecgscreen.contract import SIGNAL_RATE_HZ
from ecgscreen.imaging.canonical import paint
from ecgscreen.imaging.fidelity import lead_snr_db, signal_snr_db
from ecgscreen.imaging.pdf_vectors import dark_polylines
from ecgscreen.imaging.pipeline import preprocess, read_ecg
from ecgscreen.imaging.signal import EcgSignal
from ecgscreen.leads import LEADS
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.scan import ScanArtefacts, draw_artefacts
from tests.imaging.test_pipeline import agreement

# These tests hold intake to its numbers on the generator's first page design; the world's
# page designs have their own tests (test_world_pages) and ``python -m bench layouts``.
make_record = partial(make_record, world_pages=False)


def _scan(seed: int) -> ScanArtefacts:
    rng = np.random.default_rng(seed)
    while (artefacts := draw_artefacts(rng)).kind != "scan":
        pass
    return artefacts


def _read(record):
    signal, info = read_ecg(encode_record(record))
    snr = float(np.mean(list(signal_snr_db(record.signal, SIGNAL_RATE_HZ, signal).values())))
    return signal, info, snr


@pytest.mark.parametrize("colour", ["grey8", "grey16"])
@pytest.mark.parametrize("grid", ["red", "pink", "green"])
def test_greyscale_scans_of_coloured_grids_are_read(colour, grid):
    """Greyscale has no chroma to tell the grid from the trace; the grid's straight lines are
    taken out once the page is level (before: ``no_layout: found 8 trace rows``)."""
    for index in (0, 3):
        base = make_record(9, index)
        record = replace(base, file_format="png", colour=colour, artefacts=_scan(index),
                         style=replace(base.style, layout="3x4+1", grid=grid))  # fmt: skip
        signal, info, snr = _read(record)
        assert info["layout"] == "3x4+1"
        assert info["gain_mm_per_mv"] == pytest.approx(10.0, rel=0.05)
        assert snr > 5.0, (colour, grid, index, snr)


def test_12x1_at_the_standard_gain_overlapping_rows():
    """12x1 at 10 mm/mV: rows 14 mm apart, tall complexes cross into the neighbours; the pulse
    is found across the overlap (before: read at 5 mm/mV, every amplitude doubled)."""
    for index in range(3):
        base = make_record(5, index)
        record = replace(base, file_format="png", artefacts=ScanArtefacts(),
                         style=replace(base.style, layout="12x1", gain=10.0, labels="above"))  # fmt: skip
        signal, info, snr = _read(record)
        assert info["layout"] == "12x1" and info["gain_source"] == "pulse"
        assert info["gain_mm_per_mv"] == pytest.approx(10.0, rel=0.05)
        assert snr > 3.0, (index, snr)


def test_6x2_has_five_seconds_per_column():
    base = make_record(5, 0)
    record = replace(base, file_format="jpeg", artefacts=_scan(2), style=replace(base.style, layout="6x2"))
    signal, info, snr = _read(record)
    assert info["layout"] == "6x2"
    assert signal.spans["I"] == (0.0, 5.0) and signal.spans["V1"] == (5.0, 10.0)
    assert np.isfinite(signal.lead("I")[: 5 * SIGNAL_RATE_HZ]).mean() > 0.95
    assert np.isnan(signal.lead("I")[5 * SIGNAL_RATE_HZ + 10 :]).all()  # not printed there
    assert snr > 8.0


def test_no_calibration_pulse_assumes_the_standard_gain_and_says_so():
    base = make_record(5, 3)
    record = replace(base, file_format="png", artefacts=ScanArtefacts(),
                     style=replace(base.style, layout="3x4+1", calibration=False))  # fmt: skip
    signal, info, snr = _read(record)
    assert info["gain_source"] == "standard" and info["gain_mm_per_mv"] == pytest.approx(10.0)
    assert any("no calibration pulse" in w for w in info["warnings"])
    assert snr > 8.0


@pytest.mark.parametrize("gain", [5.0, 10.0])
def test_a_vector_pdf_without_a_pulse_reads_the_gain_it_prints(gain):
    base = make_record(5, 3)
    record = replace(base, file_format="pdf",
                     style=replace(base.style, layout="12x1", calibration=False, gain=gain))  # fmt: skip
    signal, info, snr = _read(record)
    assert info["gain_source"] == "text" and info["gain_mm_per_mv"] == pytest.approx(gain)
    assert any(f"prints {gain:g} mm/mV" in w for w in info["warnings"])
    assert snr > 40.0


def test_a_lead_label_touching_the_trace_is_not_read_as_trace():
    base = make_record(5, 0)
    above = replace(
        base,
        file_format="png",
        artefacts=ScanArtefacts(),
        style=replace(base.style, layout="3x4+1", labels="above"),
    )
    touching = replace(above, style=replace(above.style, labels="touching"))
    _, _, snr_above = _read(above)
    _, _, snr_touching = _read(touching)
    assert snr_touching > snr_above - 2.0, (snr_above, snr_touching)


@pytest.mark.parametrize("layout", ["3x4+1", "6x2", "12x1"])
def test_a_vector_pdf_is_read_from_its_polylines_exactly(layout):
    base = make_record(5, 1)
    record = replace(base, file_format="pdf", style=replace(base.style, layout=layout))
    signal, info, snr = _read(record)
    assert info["reading"] == "vector" and info["layout"] == layout
    assert snr > 40.0  # the cart's own numbers: only float formatting is lost
    # ... so its canonical input is the waveform's
    waveform = preprocess(encode_record(replace(record, file_format="dcm-waveform"))).canonical
    assert agreement(paint(signal), waveform) > 0.99


def test_a_pdf_holding_a_scan_is_read_from_its_pixels():
    record = replace(make_record(5, 2), file_format="png", artefacts=_scan(4))
    image = Image.open(io.BytesIO(encode_record(record))).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PDF", resolution=120)
    assert dark_polylines(buffer.getvalue()) is None  # an image XObject: nothing to read as numbers
    signal, info = read_ecg(buffer.getvalue())
    assert "reading" not in info and info["layout"] == record.style.layout


def test_snr_metric_forgives_shift_and_offset_only():
    rng = np.random.default_rng(0)
    truth = np.cumsum(rng.normal(0, 0.05, 2000))
    shifted = np.roll(truth, 20) + 0.3  # 40 ms later, 0.3 mV higher
    assert lead_snr_db(truth[100:-100], shifted[100:-100], 500) > 60
    noisy = truth + rng.normal(0, 0.1 * truth.std(), truth.size)
    assert lead_snr_db(truth, noisy, 500) == pytest.approx(
        20.0 + 10 * np.log10(np.mean(truth**2) / truth.var()), abs=1.0
    )
    wave = np.sin(np.arange(2000) / 25)  # zero mean: a missing estimate scores 0 dB
    assert lead_snr_db(wave, np.full(wave.size, np.nan), 500) == pytest.approx(0.0, abs=0.1)


def test_the_signal_carries_spans_confidence_and_a_fixed_rate():
    record = replace(
        make_record(5, 4), file_format="pdf", style=replace(make_record(5, 4).style, layout="3x4+1")
    )
    signal, _ = read_ecg(encode_record(record))
    assert signal.sample_rate == SIGNAL_RATE_HZ and signal.values.shape == (12, 10 * SIGNAL_RATE_HZ)
    assert signal.spans["V1"] == (5.0, 7.5) and signal.spans["II"] == (0.0, 10.0)  # the rhythm strip
    assert set(signal.confidence) == set(LEADS) and min(signal.confidence.values()) > 0.9
    with pytest.raises(ValueError, match="12, N"):
        EcgSignal(np.zeros((11, 10)))


def test_a_digitised_waveform_reads_back_as_the_printout_it_came_from(tmp_path):
    """``ecgscreen digitize`` output fed back to intake: the printed spans come back (not flat
    zeros for the rest of each lead), so the canonical input is the printout's own."""
    from ecgscreen.imaging.signal_io import write_signal

    base = make_record(5, 2)
    data = encode_record(replace(base, file_format="pdf", style=replace(base.style, layout="3x4+1")))
    signal, info = read_ecg(data)
    (written,) = write_signal(signal, info, data, tmp_path / "ecg", "dcm")
    again, again_info = read_ecg(written.read_bytes())
    assert again_info["source_format"] == "dicom-waveform"
    assert again.spans["V1"] == signal.spans["V1"] and np.isnan(again.lead("V1")[:2000]).all()
    original, reread = preprocess(data).canonical, preprocess(written.read_bytes()).canonical
    assert np.abs(original.astype(int) - reread).max() <= 8  # 2.5 uV storage steps


@pytest.mark.slow
def test_digitisation_snr_per_acquisition():
    """``python -m bench digitize`` in small (6 ECGs, seed 37, every printed format): the
    median SNR per acquisition class. Vector PDFs are read exactly (goal 25 dB). Rasters are
    held to what they measure here (clean 12-13, scan 11, photo 7-9 dB) less a margin: the
    generator's white muscle noise caps any raster reading near the smoothed recording's
    ~20 dB (the benchmark prints that yardstick)."""
    from ecgscreen.synth.renditions import ACQUISITION_OF, renditions_of

    scores: dict[str, list[float]] = {}
    for index in range(6):
        record, files = renditions_of(37, index, tuple(ACQUISITION_OF), world_pages=False)
        for name, data in files.items():
            signal, _ = read_ecg(data)
            snr = float(np.mean(list(signal_snr_db(record.signal, SIGNAL_RATE_HZ, signal).values())))
            scores.setdefault(ACQUISITION_OF[name], []).append(snr)
    medians = {kind: float(np.median(v)) for kind, v in scores.items()}
    assert medians["vector PDF"] >= 25.0, medians
    assert medians["clean raster"] >= 10.0 and medians["scan"] >= 8.5 and medians["photo"] >= 5.0, medians


def test_pdf_numbers_parse_as_python_floats_and_odd_ones_as_numpy_refuses():
    from ecgscreen.imaging.pdf_vectors import _numbers

    rng = np.random.default_rng(3)
    values = [
        round(float(v), int(d))
        for v, d in zip(rng.uniform(-900, 900, 5000), rng.integers(0, 7, 5000), strict=True)
    ]
    words = [repr(v).encode() for v in values] + [b"-.5", b"+3.25", b".098039", b"12.", b"-0", b"7"]
    tokens = np.array(words, dtype="S16")
    assert np.array_equal(_numbers(tokens), np.array([float(w) for w in words]))  # bit for bit
    for odd in (b"1.2.3", b"-", b".", b"1-2", b"1\x002", b"08:28"):
        with pytest.raises(ValueError):
            _numbers(np.array([b"1.5", odd]))


def test_a_vector_page_of_too_many_objects_is_refused_before_it_is_read():
    from ecgscreen.imaging.errors import IntakeError
    from ecgscreen.imaging.limits import DEFAULT_LIMITS

    pdf = encode_record(replace(make_record(5, 2), file_format="pdf"))
    assert len(dark_polylines(pdf)) > 12  # a cart's page: one polyline per row at least
    with pytest.raises(IntakeError) as refused:
        dark_polylines(pdf, replace(DEFAULT_LIMITS, max_pdf_objects=10))
    assert refused.value.reason == "pdf_too_complex"
