"""Intake over synthetic printouts: layout, rotation, and one canonical input per ECG."""

from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from scipy.ndimage import gaussian_filter

from ecgscreen.imaging.canonical import signal_to_canonical
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.leads import LAYOUTS, LEADS, panel_box
from ecgscreen.synth.generate import FORMATS, RASTER_FORMATS, encode_record, make_record
from ecgscreen.synth.scan import ScanArtefacts

# These tests hold intake to its numbers on the generator's first page design; the world's
# page designs have their own tests (test_world_pages) and ``python -m bench layouts``.
make_record = partial(make_record, world_pages=False)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two canonical images' ink after a 1.5 px Gaussian blur.

    The blur forgives the one-pixel misregistration that any re-digitisation has; what is
    left measures whether the same waveform was drawn."""
    ink_a, ink_b = (gaussian_filter(1 - x.astype(np.float32) / 255, 1.5).ravel() for x in (a, b))
    return float(np.corrcoef(ink_a, ink_b)[0, 1])


class Refused:
    """Stands in for a result when intake refused the file (counted as a miss)."""

    def __init__(self, error: IntakeError) -> None:
        self.info = {"layout": None, "rotation_deg": float("nan"), "error": str(error)}
        self.canonical = np.full((384, 384), 255, dtype=np.uint8)


@pytest.fixture(scope="module")
def corpus():
    """150 synthetic ECGs across all formats, layouts, grids and acquisitions."""
    results = []
    for r in (make_record(2024, i) for i in range(150)):
        try:
            results.append((r, preprocess(encode_record(r))))
        except IntakeError as error:
            results.append((r, Refused(error)))
    return results


@pytest.mark.slow
def test_layout_is_found_for_at_least_99_percent(corpus):
    printed = [(r, p) for r, p in corpus if r.file_format != "dcm-waveform"]
    assert {r.style.layout for r, _ in printed} == set(LAYOUTS)
    assert {r.style.grid for r, _ in printed} == {"red", "pink", "green", "none"}  # the first page's
    assert {r.file_format for r, _ in corpus} == set(FORMATS)
    right = sum(p.info["layout"] == r.style.layout for r, p in printed)
    assert right / len(printed) >= 0.99, [(r.index, r.style.layout, p.info["layout"]) for r, p in printed]


@pytest.mark.slow
def test_rotation_error_is_within_half_a_degree(corpus):
    rotated = [(r, p) for r, p in corpus if r.file_format in RASTER_FORMATS and r.artefacts.rotation_deg]
    assert len(rotated) > 30
    errors = np.array([p.info["rotation_deg"] - r.artefacts.rotation_deg for r, p in rotated])
    assert np.nanmax(np.abs(errors)) <= 0.5, errors
    assert np.isnan(errors).mean() <= 0.01


@pytest.mark.slow
def test_printouts_agree_with_the_signal_they_print(corpus):
    """Every printed file's canonical input matches the canonical input drawn straight from
    its signal. Bounds (measured minima 0.86 clean, 0.78 scan, 0.63 photo on this set):
    every clean export or scan >= 0.75 and their median >= 0.9; phone photos (perspective,
    shadow, blur) >= 0.6 with median >= 0.78."""
    scores = {"clean": [], "scan": [], "photo": []}
    for r, p in corpus:
        if r.file_format != "dcm-waveform":
            scores[r.artefacts.kind].append(agreement(p.canonical, signal_to_canonical(r.signal, 500)))
    assert min(scores["clean"] + scores["scan"]) >= 0.75, scores
    assert np.median(scores["clean"] + scores["scan"]) >= 0.9
    assert min(scores["photo"]) >= 0.6 and np.median(scores["photo"]) >= 0.78, scores["photo"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_ecg_in_six_file_types_gives_one_canonical_input(layout):
    """The same ECG as PNG, JPEG, PDF, DICOM-PDF, DICOM-SC and DICOM waveform (the raster
    ones scanned: rotated 1.2 deg, blurred, noisy, colour cast): every pair of canonical
    inputs agrees >= 0.9 (measured 0.935-0.973)."""
    base = replace(make_record(77, 3), style=replace(make_record(77, 3).style, layout=layout, grid="red"))
    scan = ScanArtefacts(
        kind="scan", rotation_deg=1.2, blur_px=0.4, noise_sd=3.0, cast=(0.98, 0.97, 0.95), seed=1
    )
    images = {}
    for fmt in FORMATS:
        record = replace(base, file_format=fmt, artefacts=scan if fmt in RASTER_FORMATS else ScanArtefacts())
        result = preprocess(encode_record(record))
        assert result.info["layout"] == (layout if fmt != "dcm-waveform" else "waveform")
        images[fmt] = result.canonical
    for fmt, image in images.items():
        for other in FORMATS:
            assert agreement(image, images[other]) >= 0.9, (fmt, other)


def test_pydicom_real_waveform_goes_end_to_end():
    data = open(get_testdata_file("waveform_ecg.dcm"), "rb").read()
    result = preprocess(data)
    assert result.info["source_format"] == "dicom-waveform"
    assert result.info["layout"] == "waveform" and result.info["quality"] == 1.0
    assert result.canonical.shape == (384, 384) and result.canonical.dtype == np.uint8
    for lead in LEADS:  # every panel holds a trace
        top, left, bottom, right = panel_box(lead)
        ink = 255 - result.canonical[top:bottom, left:right]
        assert (ink > 128).any(axis=0).mean() > 0.9, lead
    tensor = result.tensor
    assert tensor.shape == (3, 384, 384) and tensor.dtype == np.float32
    assert np.isfinite(tensor).all()


def test_info_record_describes_the_file():
    record = replace(make_record(5, 1), file_format="jpeg")
    info = preprocess(encode_record(record)).info
    assert info["source_format"] == "jpeg"
    assert info["layout"] == record.style.layout
    assert 0.0 < info["quality"] <= 1.0
    assert info["gain_mm_per_mv"] == pytest.approx(record.style.gain_mm_per_mv, rel=0.05)
    assert isinstance(info["warnings"], list)
    assert info["grid"] in ("red", "pink", "green", "grey", "none")
    # Nothing read from the page (names, IDs) is in the info record.
    assert record.header.name not in repr(info) and record.header.patient_id not in repr(info)


def test_preprocess_cli_writes_pngs_and_json_lines(tmp_path):
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from ecgscreen.cli import app

    good = tmp_path / "scan.jpg"
    good.write_bytes(encode_record(replace(make_record(5, 1), file_format="jpeg")))
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    result = CliRunner().invoke(app, ["preprocess", str(good), str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1  # one file refused
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["layout"] and Image.open(lines[0]["canonical"]).size == (384, 384)
    assert lines[1]["error"] == "empty" and lines[1]["status"] == 400
