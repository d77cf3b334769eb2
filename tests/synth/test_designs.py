"""The world's page variety (``synth.designs``, issue 21): every design option is drawn, the
first page stays as it was, and the masks follow a photo's page wherever it lies."""

import io
from collections import Counter
from dataclasses import replace

import numpy as np
from PIL import Image

from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.masks import CLASSES, record_masks
from ecgscreen.synth.printout import FURNITURE, MINOR_STYLES, PULSE_PLACES, SEPARATORS, PageDesign, PrintStyle
from ecgscreen.synth.scan import ScanArtefacts

N = 300


def test_every_design_option_is_drawn():
    records = [make_record(5, i, formats=("png", "jpeg", "pdf")) for i in range(N)]
    designs = [r.style.design for r in records]
    assert {d.pulse for d in designs} == set(PULSE_PLACES)
    assert {d.separators for d in designs} == set(SEPARATORS)
    assert {d.minor for d in designs} == set(MINOR_STYLES)
    assert {d.paper for d in designs} == {"A4", "Letter"}
    assert set(FURNITURE) <= {name for d in designs for name in d.furniture}
    assert any(d.frame for d in designs) and any(d.crop_mm for d in designs)
    assert 0.1 < sum(d == replace(PageDesign(), seed=d.seed) for d in designs) / N < 0.35
    grids = Counter(r.style.grid for r in records)
    assert {"orange", "blue", "grey", "black"} <= set(grids)
    assert {r.dpi for r in records} >= {72, 96, 100, 150, 200, 300}
    widths = [d.trace_mm for d in designs]
    assert min(widths) < 0.2 and max(widths) > 0.45


def test_every_page_fits_its_paper():
    for i in range(N):
        style = make_record(6, i, formats=("pdf",)).style
        d = style.design
        width, height = d.size_mm
        end = d.trace_x0 + 10 * style.paper_speed + (10.0 if d.pulse.startswith("end") else 0.0)
        assert 0 <= d.grid_box[0] < d.trace_x0 and end <= d.grid_box[2] <= width, (i, d)
        assert d.grid_box[3] <= height


def test_the_first_page_is_drawn_as_it_was():
    assert PrintStyle().design == PageDesign()


def test_a_photos_masks_follow_its_smaller_curled_page():
    base = make_record(8, 2, formats=("png",))
    photo = ScanArtefacts(kind="photo", rotation_deg=2.0, page_scale=0.8, background=(60, 60, 65), curl=0.015,
                          objects=((0.0, 0.0, 0.07, 0.1, 200.0, 30.0, 30.0),))  # fmt: skip
    record = replace(base, artefacts=photo, dpi=100, colour="rgb")
    image = np.asarray(Image.open(io.BytesIO(encode_record(record))).convert("RGB"))
    classes, _ = record_masks(record)
    assert classes.shape == image.shape[:2]
    trace = classes == CLASSES.index("trace")
    # The trace's pixels are dark in the picture; the background around the page holds none.
    assert np.median(image[trace].mean(axis=1)) < 120
    h, w = classes.shape
    assert not classes[: int(0.05 * h)].any() and not classes[:, : int(0.05 * w)].any()


def test_a_fax_like_page_is_black_and_white():
    record = replace(make_record(8, 3, formats=("png",)), colour="binary")
    image = np.asarray(Image.open(io.BytesIO(encode_record(record))))
    assert set(np.unique(image)) <= {0, 255}
