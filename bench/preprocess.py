"""Preprocessing time per format, next to the study's approach on the same files.

The study's app rasterises the whole page at 300 dpi, removes the grid by three exact RGB
values and crops a fixed box. ``study_baseline`` does those steps (for image files: resize
to a 300-dpi page first); ours is ``ecgscreen.imaging.pipeline.preprocess``, with the page
segmenter and, as the same run's baseline, by colour alone (``ECGSCREEN_SEGMENTER=off``). All
run in this process, one file at a time, on one core; a refused file is timed too.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pydicom
import pypdfium2 as pdfium
from PIL import Image

from ecgscreen.contract import CANONICAL_SIZE
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.printout import GRID_COLORS

from .common import summary

N_PER_FORMAT = 15
FORMATS = ("png", "jpeg", "pdf", "dcm-pdf", "dcm-sc", "dcm-waveform")
_PAGE_300DPI = (3508, 2480)
_GRID_RGB = np.array([*GRID_COLORS["red"], (255, 0, 0)], dtype=np.uint8)  # one printer's grid


def study_baseline(data: bytes, fmt: str) -> np.ndarray:
    """Full-page 300-dpi raster, exact-RGB grid removal, fixed crop, resize to the canonical size."""
    if fmt == "dcm-pdf":
        ds = pydicom.dcmread(io.BytesIO(data))
        data, fmt = bytes(ds.EncapsulatedDocument), "pdf"
    if fmt == "pdf":
        page = pdfium.PdfDocument(data)[0]
        rgb = page.render(scale=300 / 72, rev_byteorder=True).to_numpy()[..., :3]
    else:
        if fmt == "dcm-sc":
            pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
            if pixels.dtype != np.uint8:  # 16-bit greyscale scans
                pixels = (pixels >> 8).astype(np.uint8)
            image = Image.fromarray(pixels).convert("RGB")
        else:
            image = Image.open(io.BytesIO(data)).convert("RGB")
        rgb = np.asarray(image.resize(_PAGE_300DPI, Image.Resampling.BILINEAR))
    rgb = rgb.copy()
    for colour in _GRID_RGB:
        rgb[(rgb == colour).all(axis=2)] = 255
    h, w = rgb.shape[:2]
    crop = rgb[int(0.19 * h) : int(0.98 * h), int(0.03 * w) : int(0.97 * w)]
    return np.asarray(
        Image.fromarray(crop).convert("L").resize((CANONICAL_SIZE, CANONICAL_SIZE), Image.Resampling.BILINEAR)
    )


def _time(fn, data_list) -> list[float]:
    """Wall ms per file; a refusal is timed too (refusing is intake's work as well)."""
    import time

    times = []
    for data in data_list:
        start = time.perf_counter()
        try:
            fn(data)
        except IntakeError:
            pass
        times.append((time.perf_counter() - start) * 1000)
    return times


def _colour_alone(data: bytes) -> None:
    """Intake without the page segmenter (``ECGSCREEN_SEGMENTER=off``): the same run's baseline."""
    os.environ["ECGSCREEN_SEGMENTER"] = "off"
    try:
        preprocess(data)
    finally:
        os.environ.pop("ECGSCREEN_SEGMENTER")


def main() -> None:
    print(
        f"{'format':13s} {'ours median':>11s} {'p95':>7s} {'colour alone':>12s} {'x':>5s}"
        f" {'study median':>12s} {'p95':>7s} {'speed-up':>9s}"
    )
    for fmt in FORMATS:
        files = [encode_record(make_record(11, i, formats=(fmt,))) for i in range(N_PER_FORMAT)]
        _time(preprocess, files[:1])  # warm imports, caches and the segmenter's session
        ours = summary(_time(preprocess, files))
        alone = summary(_time(_colour_alone, files))
        cost = ours["median_ms"] / alone["median_ms"]
        line = (
            f"{fmt:13s} {ours['median_ms']:9.1f}ms {ours['p95_ms']:5.1f}ms"
            f" {alone['median_ms']:10.1f}ms {cost:4.1f}x"
        )
        if fmt == "dcm-waveform":
            print(line + f" {'(the study cannot read waveforms)':>30s}")
            continue
        study = summary(_time(lambda d, f=fmt: study_baseline(d, f), files))
        ratio = study["median_ms"] / ours["median_ms"]
        print(line + f" {study['median_ms']:10.1f}ms {study['p95_ms']:5.1f}ms {ratio:8.1f}x")


if __name__ == "__main__":
    main()
