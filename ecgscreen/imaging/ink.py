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


@dataclass(frozen=True)
class Ink:
    darkness: np.ndarray  # (H, W) float32, 0 = paper, 1 = black
    mask: np.ndarray  # (H, W) bool: the trace (and text)
    grid: str  # "red" | "pink" | "green" | "grey" | "none"
    threshold: float


def _local_paper(channel: np.ndarray) -> np.ndarray:
    """Paper brightness around each pixel: block maxima, 3x3-dilated, bilinear upsampled."""
    h, w = channel.shape
    hb, wb = max(1, h // _BLOCK), max(1, w // _BLOCK)
    blocks = channel[: hb * _BLOCK, : wb * _BLOCK].reshape(hb, _BLOCK, wb, _BLOCK).max(axis=(1, 3))
    padded = np.pad(blocks, 1, mode="edge")
    blocks = np.max([padded[dy : dy + hb, dx : dx + wb] for dy in range(3) for dx in range(3)], axis=0)
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
    """(H, W) uint8 maps: brightest channel (HSV value) and max - min channel (chroma)."""
    if image.ndim == 2:
        return image, np.zeros_like(image)
    r, g, b = (Image.fromarray(np.ascontiguousarray(image[..., c])) for c in range(3))
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
    if abs(scale - 1.0) > 0.05:
        h, w = value.shape
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        value, chroma = (
            np.asarray(Image.fromarray(m).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)) for m in (value, chroma)
        )
    paper = _local_paper(value).astype(np.float32)
    # Coloured pixels (grid) are discounted by how much more colourful they are than the
    # paper (a colour cast tints the paper too): a dark green major line is still green; the
    # trace, and its anti-aliased edges over the grid, stay neutral.
    paper_chroma = float(np.median(chroma[::8, ::8]))
    excess = np.maximum(chroma.astype(np.float32) - paper_chroma, 0.0) * np.float32(1 / 255)
    darkness = 1.0 - np.minimum(value * (1.0 / np.maximum(paper, 1.0)), 1.0) - excess
    # The trace is a few percent of the page; its typical darkness sets the threshold, so a
    # faint or blurred trace is still found while grid lines (discounted darkness under 0.15)
    # are not. Hysteresis adds fainter pixels connected to sure ones: a thin stroke that
    # anti-aliasing split over two pixel rows, without admitting isolated sensor noise.
    histogram = np.bincount((darkness * 255).astype(np.uint8).ravel(), minlength=256)
    level = np.searchsorted(np.cumsum(histogram), 0.995 * darkness.size) / 255.0
    threshold = float(np.clip(0.5 * level, 0.28, 0.5))
    mask = _hysteresis(darkness, threshold, 0.6 * threshold)
    return Ink(darkness, mask, _grid_colour(image), threshold)
