"""Render the ECG area of a PDF report with pypdfium2 — only the traces, only where they are.

A cart's PDF is vector graphics: the grid is a set of light, coloured lines and the text is
text. Both are dropped *before* rasterising (dark strokes stay), so the grid never has to be
removed from pixels and the page renders several times faster. The crop box is the union of
the remaining drawing, rendered at the working resolution rather than a 300-dpi page.
Scanned PDFs (an embedded image) are rendered whole and go through pixel grid removal.
"""

from __future__ import annotations

import ctypes
import re
import zlib
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .errors import IntakeError
from .limits import Limits

__all__ = ["RenderedPdf", "render_pdf", "check_document", "check_inflation", "too_complex"]

POINTS_PER_MM = 72 / 25.4
_STREAM = re.compile(rb"stream\r?\n")
_DARK_LUMA = 110  # strokes darker than this are traces (black, dark blue), not grid


@dataclass(frozen=True)
class RenderedPdf:
    image: np.ndarray  # (H, W) uint8 grey, or (H, W, 3) RGB when the page holds a scan
    vector: bool  # grid and text removed as vectors
    pages: int


def check_inflation(data: bytes, limit: int) -> None:
    """Refuse a PDF whose compressed streams would inflate beyond ``limit`` bytes in total.

    pdfium inflates every content stream it parses; a few kilobytes of deflate can expand to
    gigabytes. This pass inflates with a running cap, so a bomb costs at most ``limit``.
    """
    total = 0
    for match in _STREAM.finditer(data):
        inflater = zlib.decompressobj()
        chunk = data[match.end() : match.end() + 16 * 1024 * 1024]
        try:
            while chunk and total <= limit:
                out = inflater.decompress(chunk, limit + 1 - total)
                total += len(out)
                chunk = inflater.unconsumed_tail
                if inflater.eof:
                    break
        except zlib.error:
            continue  # not deflate (or not a stream at all): pdfium will judge it
        if total > limit:
            raise IntakeError(
                "pdf_bomb",
                f"the PDF's compressed streams inflate to more than {limit // (1024 * 1024)} MB; "
                "this is not an ECG report",
            )


def _open(data: bytes) -> pdfium.PdfDocument:
    if b"%%EOF" not in data[-2048:]:
        raise IntakeError("truncated", "the PDF has no end-of-file marker: it is truncated")
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise IntakeError(
                "pdf_encrypted", "the PDF is password-protected; export it without encryption"
            ) from None
        raise IntakeError("corrupt", "the PDF cannot be parsed (pdfium refused it)") from None


def _is_dark(obj: pdfium.PdfObject) -> bool:
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    pdfium_c.FPDFPath_GetDrawMode(obj.raw, fill, stroke)
    getter = pdfium_c.FPDFPageObj_GetStrokeColor if stroke.value else pdfium_c.FPDFPageObj_GetFillColor
    if not getter(obj.raw, r, g, b, a):
        return True  # colour unknown (pattern, separation): keep it
    return 0.299 * r.value + 0.587 * g.value + 0.114 * b.value < _DARK_LUMA


def _page_count(doc: pdfium.PdfDocument, limits: Limits) -> int:
    pages = len(doc)
    if pages == 0:
        raise IntakeError("corrupt", "the PDF has no pages")
    if pages > limits.max_pdf_pages:
        raise IntakeError(
            "pdf_too_many_pages",
            f"the PDF has {pages} pages; an ECG report has at most {limits.max_pdf_pages}",
        )
    return pages


def too_complex(count: int, limits: Limits) -> IntakeError | None:
    """The refusal of a page of ``count`` drawing objects, if over the limit (also asked by
    ``pdf_vectors``, which counts them in the content stream)."""
    if count <= limits.max_pdf_objects:
        return None
    return IntakeError(
        "pdf_too_complex", f"the PDF page has {count} drawing objects (limit {limits.max_pdf_objects})"
    )


def _checked_page(doc: pdfium.PdfDocument, limits: Limits) -> tuple[pdfium.PdfPage, int]:
    pages = _page_count(doc, limits)
    page = doc[0]
    if (error := too_complex(pdfium_c.FPDFPage_CountObjects(page.raw), limits)) is not None:
        raise error
    return page, pages


def check_document(data: bytes, limits: Limits) -> None:
    """Refuse an encrypted, truncated, bomb or over-long PDF (as ``render_pdf`` does) without
    loading a page: a cart's vector page is then read from its content stream
    (``pdf_vectors``), and loading it here too cost a tenth of its intake."""
    check_inflation(data, limits.max_pdf_inflated_bytes)
    doc = _open(data)
    try:
        _page_count(doc, limits)
    finally:
        doc.close()


def render_pdf(data: bytes, limits: Limits, px_per_mm: float) -> RenderedPdf:
    """Render page 1's ECG area at ``px_per_mm``; refuse encrypted, bomb or oversized PDFs."""
    check_inflation(data, limits.max_pdf_inflated_bytes)
    doc = _open(data)
    try:
        page, pages = _checked_page(doc, limits)
        objects = list(page.get_objects(max_depth=1))
        kinds = {o.type for o in objects}
        vector = pdfium_c.FPDF_PAGEOBJ_IMAGE not in kinds and pdfium_c.FPDF_PAGEOBJ_FORM not in kinds
        width_pt, height_pt = page.get_size()
        if vector:
            keep = []
            for obj in objects:
                if obj.type == pdfium_c.FPDF_PAGEOBJ_PATH and _is_dark(obj):
                    keep.append(obj.get_bounds())
                else:
                    page.remove_obj(obj)
                    obj.close()
            if not keep:
                raise IntakeError("pdf_blank", "the PDF page has no dark drawing: no ECG trace found")
            bounds = np.array(keep)
            margin = 3 * POINTS_PER_MM
            left, bottom = np.maximum(bounds[:, :2].min(axis=0) - margin, 0)
            right = min(bounds[:, 2].max() + margin, width_pt)
            top = min(bounds[:, 3].max() + margin, height_pt)
            crop = (left, bottom, width_pt - right, height_pt - top)
        else:
            crop = (0, 0, 0, 0)
        scale = px_per_mm / POINTS_PER_MM
        out_pixels = (width_pt - crop[0] - crop[2]) * (height_pt - crop[1] - crop[3]) * scale**2
        if out_pixels > limits.max_pixels:
            raise IntakeError("too_many_pixels", "the PDF page is too large to render at ECG resolution")
        bitmap = page.render(
            scale=scale, crop=crop, grayscale=vector, may_draw_forms=False, rev_byteorder=True
        )
        image = bitmap.to_numpy().copy()
        return RenderedPdf(image if vector else image[..., :3], vector, pages)
    finally:
        doc.close()
