"""Separate the trace from the paper and its grid, whatever the grid's colour.

The study's app removes the grid by three exact RGB values; that breaks with the next
printer, a colour cast or a JPEG. Here *darkness* is one minus the brightest channel, after
dividing by the local paper brightness (which undoes uneven light): a red, pink or green grid
line is bright in at least one channel, the black (or dark blue) trace is dark in all of them.
Everything runs on 2-D uint8/float32 maps, so a 1-megapixel page costs a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops
from scipy import ndimage

__all__ = ["Ink", "separate_ink", "value_and_chroma"]

_BLOCK = 16  # px; the paper brightness is the brightest value in each block
_SAMPLE = 8  # grid colour is judged on every 8th pixel in each direction
_CHROMA_DISCOUNT = [min(255, round(1.5 * v)) for v in range(256)]


@dataclass(frozen=True)
class Ink:
    darkness: np.ndarray  # (H, W) float32, 0 = paper, 1 = black
    mask: np.ndarray  # (H, W) bool: the trace (and text)
    grid: str  # "red" | "pink" | "green" | "grey" | "none"
    threshold: float


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
    r, g, b = (
        Image.fromarray(np.ascontiguousarray(image[..., c])).point(
            [min(255, round(v * 255 / max(paper[c], 1))) for v in range(256)]
        )
        for c in range(3)
    )
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


def separate_ink(image: np.ndarray, scale: float = 1.0) -> Ink:
    """Find the trace in ``image`` ((H, W, 3) RGB or (H, W) grey uint8), working on a copy
    resized by ``scale`` (the returned maps have the resized shape)."""
    value, chroma = value_and_chroma(image)
    # Coloured pixels (the grid) are discounted by their chroma: a dark green major line is
    # still green, while the trace, and its anti-aliased edges over the grid, stay neutral.
    discount = Image.fromarray(chroma).point(_CHROMA_DISCOUNT)
    value = ImageChops.add(Image.fromarray(value), discount)  # saturates at white
    if abs(scale - 1.0) > 0.05:
        size = (max(1, round(value.width * scale)), max(1, round(value.height * scale)))
        value = value.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    value = np.asarray(value)
    paper = _local_paper(value).astype(np.float32)
    darkness = 1.0 - np.minimum(value * (1.0 / np.maximum(paper, 1.0)), 1.0)
    # The trace is a few percent of the page; its typical darkness sets the threshold, so a
    # faint or blurred trace is still found while grid lines (discounted darkness under 0.15)
    # are not. Hysteresis adds fainter pixels connected to sure ones: a thin stroke that
    # anti-aliasing split over two pixel rows, without admitting isolated sensor noise.
    histogram = np.bincount((darkness * 255).astype(np.uint8).ravel(), minlength=256)
    level = np.searchsorted(np.cumsum(histogram), 0.995 * darkness.size) / 255.0
    threshold = float(np.clip(0.5 * level, 0.28, 0.5))
    mask = _hysteresis(darkness, threshold, 0.6 * threshold)
    return Ink(darkness, mask, _grid_colour(image), threshold)
