"""The generator's class masks (``synth.masks``) lie on the pixels the image draws."""

import filecmp
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from ecgscreen.leads import LEADS
from ecgscreen.synth.generate import generate, make_record
from ecgscreen.synth.masks import CLASSES, rasterize_classes, warp_like_scan
from ecgscreen.synth.printout import PrintStyle, compose_page
from ecgscreen.synth.raster_writer import PAPER, rasterize
from ecgscreen.synth.scan import ScanArtefacts, apply_artefacts

DPI = 100
INK = ("trace", "pulse", "lead_label", "text", "separator")


@pytest.fixture(scope="module")
def page():
    record = make_record(3, 5)
    return compose_page(record.signal, PrintStyle(layout="3x4+1", grid="red"), record.header)


@pytest.fixture(scope="module")
def clean(page):
    image = np.asarray(rasterize(page, DPI))
    classes, leads = rasterize_classes(page, DPI)
    return image, classes, leads


def test_every_class_and_lead_is_on_a_standard_page(clean):
    image, classes, leads = clean
    assert classes.dtype == leads.dtype == np.uint8
    assert classes.shape == leads.shape == image.shape[:2]
    assert set(np.unique(classes)) == set(range(len(CLASSES)))
    assert set(np.unique(leads)) == set(range(len(LEADS) + 1))
    assert np.all((leads > 0) == (classes == CLASSES.index("trace")))


def test_masks_lie_on_what_the_clean_image_draws(clean):
    image, classes, _ = clean
    grey = image.mean(axis=2)
    for name in INK:  # ink is dark where the mask says so
        dark = np.mean(grey[classes == CLASSES.index(name)] < 160)
        assert dark > (0.95 if name != "text" else 0.85), f"{name}: {dark:.1%} dark"
    grid = image[classes == CLASSES.index("grid")].astype(int)
    assert np.mean(grid[:, 0] - grid[:, 1] > 20) > 0.99  # red grid pixels are red
    background = grey[classes == 0]
    assert np.mean(background > 250) > 0.98
    ink = np.isin(classes, [CLASSES.index(name) for name in INK])
    assert np.mean(grey[~ink] < 128) < 0.001  # hardly a dark pixel outside the ink classes


def test_a_scanned_page_s_mask_is_warped_like_the_page(page, clean):
    _, classes, _ = clean
    # Geometry only (rotation and keystone), no photometric artefacts: the ink stays dark.
    scan = ScanArtefacts(kind="photo", rotation_deg=3.0, keystone=(0.02, 0.03))
    warped = np.asarray(apply_artefacts(rasterize(page, DPI), scan, PAPER)).mean(axis=2)
    moved = warp_like_scan(classes, scan)
    assert moved.shape == classes.shape and set(np.unique(moved)) <= set(np.unique(classes))
    trace = CLASSES.index("trace")
    assert np.mean(warped[moved == trace] < 160) > 0.85
    assert np.mean(warped[classes == trace] < 160) < 0.3  # the unwarped mask misses the trace
    assert warp_like_scan(classes, replace(scan, kind="clean")) is classes


def test_generate_writes_masks_beside_each_raster_and_nothing_else_changes(tmp_path):
    plain, masked = tmp_path / "plain", tmp_path / "masked"
    kwargs = dict(n=4, seed=9, formats=("png", "jpeg", "pdf"), workers=1)
    generate(out=plain, **kwargs)
    generate(out=masked, masks=True, **kwargs)
    files = sorted(p.name for p in plain.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(plain, masked, files, shallow=False)
    assert (mismatch, errors) == ([], [])  # images and labels.csv byte-identical
    assert {name.split(".")[1] for name in files} >= {"png", "jpg"}
    card = json.loads((masked / "masks.json").read_text())
    assert card["classes"]["2"] == "trace"
    for name in files:
        stem, ext = name.split(".")
        has_masks = (masked / f"{stem}.mask.png").exists()
        assert has_masks == (ext in ("png", "jpg")), name
        assert has_masks == (masked / f"{stem}.leads.png").exists()
        if has_masks:
            with Image.open(masked / name) as image, Image.open(masked / f"{stem}.mask.png") as mask:
                assert mask.mode == "L" and mask.size == image.size
                assert np.asarray(mask).max() < len(CLASSES)
