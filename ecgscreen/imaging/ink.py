"""Separate the trace from the paper and its grid, whatever the grid's colour.

The study's app removes the grid by three exact RGB values; that breaks with the next
printer, a colour cast or a JPEG. Here *darkness* is one minus the brightest channel, after
dividing by the local paper brightness (which undoes uneven light): a red, pink or green grid
line is bright in at least one channel, the black (or dark blue) trace is dark in all of them.
Everything runs on 2-D uint8/float32 maps, so a 1-megapixel page costs a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageChops
from scipy import ndimage

__all__ = [
    "Ink",
    "faint_ink",
    "grid_darkness",
    "separate_ink",
    "threshold_ink",
    "without_grid_lines",
    "off_page",
    "value_and_chroma",
]

_BLOCK = 16  # px; the paper brightness is the brightest value in each block
_SAMPLE = 8  # grid colour is judged on every 8th pixel in each direction
_GRID_RUN_MM = 12.0  # a straight run this long is a grid line, never the trace
NOISELESS_PAPER = 0.02  # darkness under which nine pixels in ten of an export's page lie
FAINT_SHARE, FAINT_FLOOR = 0.35, 0.1  # the faint pen's threshold: share of the level, floor
_CHROMA_DISCOUNT = [min(255, round(1.5 * v)) for v in range(256)]


@dataclass(frozen=True)
class Ink:
    darkness: np.ndarray  # (H, W) float32, 0 = paper, 1 = black
    mask: np.ndarray  # (H, W) bool: the trace (and text)
    grid: str  # "red" | "pink" | "green" | "grey" | "none"
    threshold: float
    greyscale: bool = False  # no chroma: a grid can only be told from the trace by its shape


def _local_paper(channel: np.ndarray) -> np.ndarray:
    """Paper brightness around each pixel.

    Means over 4x4 pixels (which average the sensor noise away), their maximum over 16x16
    blocks (paper shows between the lines of any block), a 3x3 median over blocks (a block
    filled by trace or text is outvoted by its neighbours), bilinear back to full size.
    """
    h, w = channel.shape
    means = np.asarray(Image.fromarray(channel).reduce(4))
    k = _BLOCK // 4
    hb, wb = max(1, means.shape[0] // k), max(1, means.shape[1] // k)
    blocks = means[: hb * k, : wb * k].reshape(hb, k, wb, k).max(axis=(1, 3))
    blocks = ndimage.median_filter(blocks, size=3, mode="nearest")
    return np.asarray(Image.fromarray(blocks).resize((w, h), Image.Resampling.BILINEAR))


def _grid_colour(rgb: np.ndarray) -> str:
    """Name the grid from the colour of printed, non-black pixels relative to the paper."""
    if rgb.ndim == 2:
        return "none"
    sample = rgb[::_SAMPLE, ::_SAMPLE].astype(np.float32)
    paper = np.percentile(sample.reshape(-1, 3), 95, axis=0)
    flat = np.minimum(sample / np.maximum(paper, 1), 1.0)
    printed = (flat.min(axis=2) < 0.88) & (flat.max(axis=2) > 0.6)  # coloured, not ink
    if printed.mean() < 0.02:
        return "none"
    r, g, b = (float(np.median(flat[..., c][printed])) for c in range(3))
    if g > r + 0.04 and g > b + 0.02:
        return "green"
    if r > g + 0.04:
        return "pink" if b > g + 0.02 else "red"
    return "grey"


def value_and_chroma(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 maps of the white-balanced image: brightest channel (HSV value) and
    max - min channel (chroma). White balance (each channel scaled so the paper is white)
    removes a colour cast, so only the grid and stains remain colourful."""
    if image.ndim == 2:
        return image, np.zeros_like(image)
    paper = np.percentile(image[::_SAMPLE, ::_SAMPLE].reshape(-1, 3), 95, axis=0)
    balance = [min(255, round(v * 255 / max(paper[c], 1))) for c in range(3) for v in range(256)]
    r, g, b = Image.fromarray(image).point(balance).split()  # one lookup table per band
    value = ImageChops.lighter(ImageChops.lighter(r, g), b)
    chroma = ImageChops.subtract(value, ImageChops.darker(ImageChops.darker(r, g), b))
    return np.asarray(value), np.asarray(chroma)


def _hysteresis(darkness: np.ndarray, high: float, low: float) -> np.ndarray:
    weak = darkness > low
    labels, count = ndimage.label(weak, structure=np.ones((3, 3), dtype=int))
    sure = np.zeros(count + 1, dtype=bool)
    sure[labels[darkness > high]] = True
    sure[0] = False
    return sure[labels]


def without_grid_lines(darkness: np.ndarray, px_per_mm: float) -> np.ndarray:
    """``darkness`` of a *deskewed* greyscale page minus its straight grid lines.

    Greyscale has no chroma to tell a red grid from the trace, and a thin trace can be barely
    darker than a major grid line. But grid lines are straight and run across the whole ruled
    area: a grey opening with a ``_GRID_RUN_MM`` line keeps every straight run, and the pixel
    rows / columns where such runs cover most of the page are the grid's. Only those are
    subtracted, capped at the grid's own darkness, so a flat stretch of trace (straight, but
    never across the page) stays and a trace crossing a grid line keeps its contrast.
    """
    run = max(3, int(round(_GRID_RUN_MM * px_per_mm)) | 1)
    vertical = ndimage.grey_opening(darkness, size=(run, 1))
    horizontal = ndimage.grey_opening(darkness, size=(1, run))
    h, w = darkness.shape
    grid_columns = (vertical > 0.05).mean(axis=0) > 0.4  # a ruled area spans most of the page
    grid_rows = (horizontal > 0.05).mean(axis=1) > 0.6
    if grid_columns.sum() < 0.1 * w / px_per_mm:  # a grid has a line every millimetre
        return darkness
    lines = vertical[:, grid_columns]
    grid = float(np.percentile(lines[lines > 0.05], 90)) + 0.03
    straight = np.zeros_like(darkness)
    straight[:, grid_columns] = vertical[:, grid_columns]
    straight[grid_rows] = np.maximum(straight[grid_rows], horizontal[grid_rows])
    return np.clip(darkness - np.minimum(straight, grid), 0.0, 1.0)


def separate_ink(
    image: np.ndarray, scale: float = 1.0, px_per_mm: float | None = None, faint_pen: bool = False
) -> Ink:
    """Find the trace in ``image`` ((H, W, 3) RGB or (H, W) grey uint8), working on a copy
    resized by ``scale`` (the returned maps have the resized shape). ``px_per_mm`` (of the
    resized copy), when given, says the page is deskewed: a greyscale page's straight grid
    lines are then removed before thresholding (``without_grid_lines``). ``faint_pen``: look
    for a faint pen on noiseless paper too (``_threshold``)."""
    value, chroma = value_and_chroma(image)
    sample = chroma[::_SAMPLE, ::_SAMPLE]
    greyscale = not sample.any() or float(np.percentile(sample, 99)) < 8
    # Coloured pixels (the grid) are discounted by their chroma: a dark green major line is
    # still green, while the trace, and its anti-aliased edges over the grid, stay neutral.
    # A dark pixel is discounted less, down to nothing at the darkness of no grid line: a
    # JPEG smears the grid's chroma into a thin dark stroke drawn over a grid line.
    discount = np.asarray(Image.fromarray(chroma).point(_CHROMA_DISCOUNT), dtype=np.float32)
    discount *= np.clip((value.astype(np.float32) - 60.0) / 90.0, 0.0, 1.0)
    value = Image.fromarray(np.minimum(value + discount, 255.0).astype(np.uint8))  # saturates at white
    if abs(scale - 1.0) > 0.05:
        size = (max(1, round(value.width * scale)), max(1, round(value.height * scale)))
        value = value.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    value = np.asarray(value)
    paper = _local_paper(value).astype(np.float32)
    darkness = 1.0 - np.minimum(value * (1.0 / np.maximum(paper, 1.0)), 1.0)
    if greyscale and px_per_mm:
        darkness = without_grid_lines(darkness, px_per_mm)
    grid = _grid_colour(image)
    ink = _threshold(darkness, grid, greyscale and grid != "none" and not px_per_mm, faint_pen)
    return replace(ink, greyscale=greyscale)


def _threshold(darkness: np.ndarray, grid: str, grid_in_darkness: bool, faint_pen: bool = False) -> Ink:
    """The trace mask of a darkness map (the ``Ink`` record). ``faint_pen``: on noiseless
    paper (an export or a screenshot: nine pixels in ten under ``NOISELESS_PAPER``) the floor
    drops to ``FAINT_FLOOR`` and the threshold to ``FAINT_SHARE`` of the trace's level."""
    # The trace is a few percent of the page; its typical darkness sets the threshold, so a
    # faint or blurred trace is still found while grid lines (discounted darkness under 0.15)
    # are not. Hysteresis adds fainter pixels connected to sure ones: a thin stroke that
    # anti-aliasing split over two pixel rows, without admitting isolated sensor noise.
    histogram = np.bincount((darkness * 255).astype(np.uint8).ravel(), minlength=256)
    cumulative = np.cumsum(histogram)
    level = np.searchsorted(cumulative, 0.995 * darkness.size) / 255.0
    threshold = float(np.clip(0.5 * level, 0.28, 0.5))
    paper = np.searchsorted(cumulative, 0.90 * darkness.size) / 255.0
    if faint_pen and paper < NOISELESS_PAPER:
        # A thin grey pen in a small export (a Mortara ELI's: darkness 0.15-0.22 at its
        # darkest) is under the 0.28 floor that keeps a photo's paper texture out; on paper
        # without texture nothing else is that dark. Not the default: on the generator's clean
        # pages it read more leads wrong (lead agreement 86.9 -> 84.4 %, bench refusals).
        threshold = float(np.clip(FAINT_SHARE * level, FAINT_FLOOR, 0.5))
    low = 0.6 * threshold
    if grid_in_darkness:
        # A greyscale grid still in the map covers several percent of the page (its 96th
        # percentile), the trace about one (its 99.7th): cut half-way, and never let the
        # hysteresis follow a grid line. Good enough to find the page's rotation.
        grid_level, trace = (np.searchsorted(cumulative, q * darkness.size) / 255.0 for q in (0.96, 0.997))
        threshold = max(threshold, (grid_level + trace) / 2)
        low = max(low, min(grid_level + 0.05, threshold))
    mask = _hysteresis(darkness, threshold, low)
    return Ink(darkness, mask, grid, threshold)


def faint_ink(ink: Ink) -> np.ndarray:
    """Ink a step fainter than ``ink``'s mask: pixels over 0.6 of its threshold, and those
    over 0.4 of it joined to them. Where a row's calibration pulse is looked for once more
    (``layout.find_layout``): a thin pen's pulse, anti-aliased over two pixel columns in a
    small scan, comes out at half the trace's darkness and under the threshold, while its
    trace, drawn over and over by the QRS and the T waves, stays dark."""
    return _hysteresis(ink.darkness, 0.6 * ink.threshold, 0.4 * ink.threshold)


def threshold_ink(darkness: np.ndarray, grid: str) -> Ink:
    """The ``Ink`` record of a darkness map that holds no grid (any more)."""
    return _threshold(darkness, grid, False)


def grid_darkness(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) = ``shape`` uint8 darkness of ``image`` with nothing discounted: the grid
    stays, whatever its colour (``grid_clock`` reads the paper's millimetres from it)."""
    grey = Image.fromarray(image).convert("L") if image.ndim == 3 else Image.fromarray(image)
    grey = grey.resize((shape[1], shape[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return 255 - np.asarray(grey)


def off_page(image: np.ndarray, shape: tuple[int, int], px_per_mm: float) -> np.ndarray:
    """Where a photo shows what lies around the page, at ``shape`` (the ink map's size): the
    regions reaching the picture's edge that stay darker than 0.4 of the paper over a 10 mm
    window (a dark desk, a phone on it), grown by 3 mm over their edge. A trace, text or grid
    line is too thin to stay; a lighter desk is left alone."""
    grey = image if image.ndim == 2 else image.mean(axis=2)
    small_shape = (max(1, shape[0] // 4), max(1, shape[1] // 4))
    small = np.asarray(Image.fromarray(grey.astype(np.uint8)).resize(small_shape[::-1], Image.Resampling.BOX))
    paper = float(np.percentile(small, 95))
    size = max(3, round(10.0 * px_per_mm / 4))
    # Thin dark strokes close up; uneven light leaves paper above 0.4 of its brightest.
    dark = ndimage.grey_closing(small, size=(size, size)) < 0.4 * paper
    labels, count = ndimage.label(dark)
    border = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    dark = np.isin(labels, border[border > 0])  # what lies around the page reaches the edge
    if not dark.any():
        return np.zeros(shape, dtype=bool)
    dark = ndimage.binary_dilation(dark, iterations=max(1, round(3.0 * px_per_mm / 4)))
    full = np.asarray(Image.fromarray(dark).resize(shape[::-1], Image.Resampling.NEAREST))
    return full
