"""Draw a ``printout.Page`` into a raster image, as a printer and scanner would produce it."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .printout import Page

__all__ = ["rasterize", "raster_supersample", "PAPER"]

PAPER = (255, 255, 255)


@lru_cache(maxsize=16)
def _font(size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size_px)


def _rule(canvas: np.ndarray, positions_px: np.ndarray, width: int, color, axis: int) -> None:
    """Paint lines of ``width`` pixels at ``positions_px`` along ``axis`` (0: rows, 1: columns)."""
    for p in positions_px:
        sl = slice(int(p), int(p) + width)
        if axis == 0:
            canvas[sl, :] = color
        else:
            canvas[:, sl] = color


def _draw_grid(canvas: np.ndarray, page: Page, px_per_mm: float, colors=None) -> None:
    """Paint the grid's minor then major lines, in ``colors`` (minor, major) or the page's own.
    A dotted minor grid is a dot at each 1 mm crossing."""
    grid = page.grid
    x0, y0, x1, y1 = (round(v * px_per_mm) for v in grid.box)
    region = canvas[y0:y1, x0:x1]  # a view: painting it paints the canvas
    height_mm = (y1 - y0) / px_per_mm
    width_mm = (x1 - x0) / px_per_mm
    minor, major = colors or (grid.minor, grid.major)
    for step, color, width_mm_line, style in (
        (1, minor, grid.minor_mm, grid.minor_style),
        (5, major, grid.major_mm, "solid"),
    ):
        width = max(1, round(width_mm_line * px_per_mm))
        rows = np.round(np.arange(0, height_mm + 1e-6, step) * px_per_mm).astype(int)
        cols = np.round(np.arange(0, width_mm + 1e-6, step) * px_per_mm).astype(int)
        if style == "solid":
            _rule(region, rows, width, color, axis=0)
            _rule(region, cols, width, color, axis=1)
        elif style == "dotted":
            dot = max(width, round(0.15 * px_per_mm))
            for dy in range(dot):
                for dx in range(dot):
                    r, c = rows + dy, cols + dx
                    r, c = r[r < region.shape[0]], c[c < region.shape[1]]
                    region[np.ix_(r, c)] = color


def raster_supersample(dpi: float) -> int:
    """Subpixels per pixel side: 2, or 1 from 300 dpi (edges are fine there, and a 600 dpi
    page drawn at twice its size would take a gigabyte)."""
    return 1 if dpi >= 300 else 2


def rasterize(page: Page, dpi: float = 150.0, supersample: int | None = None) -> Image.Image:
    """Render ``page`` to an RGB image at ``dpi``.

    Lines and text are drawn at ``supersample`` times the resolution and box-filtered down,
    which gives the soft edges of a real print instead of aliased one-pixel steps.
    """
    supersample = raster_supersample(dpi) if supersample is None else supersample
    px_per_mm = dpi / 25.4 * supersample
    width, height = (round(v * dpi / 25.4) * supersample for v in page.size_mm)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = PAPER
    if page.grid is not None:
        _draw_grid(canvas, page, px_per_mm)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for line in page.lines:
        points = (line.points * px_per_mm).ravel().tolist()
        draw.line(points, fill=line.color, width=max(1, round(line.width_mm * px_per_mm)))
    for text in page.texts:
        font = _font(max(6, round(text.size_mm * px_per_mm)))
        draw.text((text.x * px_per_mm, text.y * px_per_mm), text.text, font=font, fill=(0, 0, 0))
    return image.reduce(supersample) if supersample > 1 else image
