"""Pixel-exact class masks of a printed page: the truth a trace segmenter learns from.

``rasterize_classes`` draws the same ``printout.Page`` that ``raster_writer.rasterize`` draws,
at the same supersampling and in the same painter's order (grid, then lines, then text), but
each element in its class value and without anti-aliasing; the block of ``supersample``²
subpixels behind an image pixel gives it the class covering most of the block among those
covering at least half (ties: the higher class), else background: the pixels the anti-aliased
image draws at least half dark (or half grid-coloured). ``record_masks``
applies the record's geometric scan artefacts (rotation and keystone, ``scan.py``) with
nearest-neighbour sampling and none of the photometric ones (blur, shadow, cast, noise).

Classes (``CLASSES``): 0 background, 1 grid, 2 trace (any lead), 3 calibration pulse,
4 lead label text, 5 other text, 6 lead separator (the tick between two leads of a row).
The lead image holds, on trace pixels, the lead drawn there: 1..12 in ``LEADS`` order
(a rhythm strip of II is II), 0 elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..leads import LEADS
from .printout import Page
from .raster_writer import _draw_grid, _font, raster_supersample
from .scan import ScanArtefacts, _curl, _warp_coefficients

__all__ = ["CLASSES", "KIND_CLASS", "rasterize_classes", "warp_like_scan", "record_masks", "write_masks_card"]

CLASSES = ("background", "grid", "trace", "pulse", "lead_label", "text", "separator")
KIND_CLASS = {kind: CLASSES.index(kind) for kind in CLASSES[2:]}
TRACE = CLASSES.index("trace")


def _class_of(kind: str) -> int:
    if kind not in KIND_CLASS:
        raise ValueError(f"unknown element kind {kind!r}; expected one of {', '.join(KIND_CLASS)}")
    return KIND_CLASS[kind]


def _block_class(sub: np.ndarray, s: int, n_values: int, at_least: int) -> np.ndarray:
    """Each ``s``x``s`` block's value: the most frequent non-zero value covering at least
    ``at_least`` subpixels (ties: the higher value), else 0."""
    h, w = sub.shape[0] // s, sub.shape[1] // s
    blocks = sub[: h * s, : w * s].reshape(h, s, w, s)
    best = np.zeros((h, w), dtype=np.uint8)
    best_count = np.zeros((h, w), dtype=np.int32)
    for value in range(1, n_values):
        count = (blocks == value).sum(axis=(1, 3), dtype=np.int32)
        wins = (count >= at_least) & (count >= best_count)
        best[wins] = value
        best_count[wins] = count[wins]
    return best


def rasterize_classes(
    page: Page, dpi: float = 150.0, supersample: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, leads)``: two ``uint8`` label images of ``page`` the size of
    ``rasterize(page, dpi, supersample)`` (classes in ``CLASSES`` order; leads 1..12 in
    ``LEADS`` order on trace pixels, 0 elsewhere)."""
    supersample = raster_supersample(dpi) if supersample is None else supersample
    px_per_mm = dpi / 25.4 * supersample
    width, height = (round(v * dpi / 25.4) * supersample for v in page.size_mm)
    canvas = np.zeros((height, width), dtype=np.uint8)
    if page.grid is not None:
        _draw_grid(canvas, page, px_per_mm, colors=(CLASSES.index("grid"),) * 2)
    classes = Image.fromarray(canvas)
    leads = Image.new("L", classes.size, 0)
    draw, draw_leads = ImageDraw.Draw(classes), ImageDraw.Draw(leads)
    for line in page.lines:
        points = (line.points * px_per_mm).ravel().tolist()
        width_px = max(1, round(line.width_mm * px_per_mm))
        draw.line(points, fill=_class_of(line.kind), width=width_px)
        if line.kind == "trace" and line.lead is not None:
            draw_leads.line(points, fill=LEADS.index(line.lead) + 1, width=width_px)
    # Glyphs as the image draws them (anti-aliased), kept where they are at least half ink:
    # FreeType's one-bit rendering hints glyphs into other shapes.
    for kind in dict.fromkeys(text.kind for text in page.texts):
        ink = Image.new("L", classes.size, 0)
        draw_ink = ImageDraw.Draw(ink)
        for text in (t for t in page.texts if t.kind == kind):
            font = _font(max(6, round(text.size_mm * px_per_mm)))
            draw_ink.text((text.x * px_per_mm, text.y * px_per_mm), text.text, font=font, fill=255)
        classes.paste(_class_of(kind), mask=ink.point(lambda v: 255 if v >= 128 else 0))
    sub = np.asarray(classes)
    if supersample == 1:
        return sub.copy(), np.where(sub == TRACE, np.asarray(leads), 0).astype(np.uint8)
    out = _block_class(sub, supersample, len(CLASSES), at_least=(supersample**2 + 1) // 2)
    lead_sub = np.where(sub == TRACE, np.asarray(leads), 0).astype(np.uint8)
    lead_out = _block_class(lead_sub, supersample, len(LEADS) + 1, at_least=1)
    lead_out = np.where(out == TRACE, lead_out, 0).astype(np.uint8)
    return out, lead_out


def warp_like_scan(mask: np.ndarray, artefacts: ScanArtefacts) -> np.ndarray:
    """``mask`` moved as ``scan.apply_artefacts`` moves the page (rotation, keystone, a
    photo's smaller page, curl), by nearest-neighbour sampling; outside the page and under
    objects lying on the picture is 0."""
    a = artefacts
    if a.kind == "clean":
        return mask
    if a.rotation_deg or any(a.keystone) or a.page_scale != 1.0:
        image = Image.fromarray(mask)
        coefficients = _warp_coefficients(image.size, a)
        mask = np.asarray(
            image.transform(
                image.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.NEAREST, fillcolor=0
            )
        )
    if a.curl:
        mask = _curl(mask, a.curl, 0, (0,))
    if a.objects:
        mask = mask.copy()
        h, w = mask.shape[:2]
        for x0, y0, x1, y1, *_ in a.objects:
            mask[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = 0
    return mask


def record_masks(record) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``(classes, leads)`` masks of a ``generate.Record``'s stored raster, or ``None``
    for records stored without a raster (PDF, waveform)."""
    from .generate import RASTER_FORMATS
    from .printout import compose_page

    if record.file_format not in RASTER_FORMATS:
        return None
    classes, leads = rasterize_classes(compose_page(record.signal, record.style, record.header), record.dpi)
    return warp_like_scan(classes, record.artefacts), warp_like_scan(leads, record.artefacts)


def write_masks_card(out: Path) -> Path:
    """``masks.json`` beside the dataset: the mask files' naming and their classes."""
    card = {
        "files": {"NNNNNN.mask.png": "classes", "NNNNNN.leads.png": "leads"},
        "classes": dict(enumerate(CLASSES)),
        "leads": {0: "none", **{i + 1: lead for i, lead in enumerate(LEADS)}},
        "notes": "same size and geometric artefacts (rotation, keystone) as the stored raster; "
        "no photometric ones; only for raster formats (png, jpeg, dcm-sc)",
    }
    path = out / "masks.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path
