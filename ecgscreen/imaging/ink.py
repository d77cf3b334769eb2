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

__all__ = ["Ink", "separate_ink", "brightest_channel"]

_BLOCK = 16  # px; the paper brightness is the brightest value in each block
_SAMPLE = 4  # grid colour is judged on every 4th pixel in each direction


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


def brightest_channel(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 max over the colour channels (HSV value); grey images pass through."""
    if image.ndim == 2:
        return image
    r, g, b = (Image.fromarray(np.ascontiguousarray(image[..., c])) for c in range(3))
    return np.asarray(ImageChops.lighter(ImageChops.lighter(r, g), b))


def separate_ink(image: np.ndarray, scale: float = 1.0) -> Ink:
    """Find the trace in ``image`` ((H, W, 3) RGB or (H, W) grey uint8), working on a copy
    resized by ``scale`` (the returned maps have the resized shape)."""
    value = brightest_channel(image)
    if abs(scale - 1.0) > 0.05:
        h, w = value.shape
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        value = np.asarray(Image.fromarray(value).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    paper = _local_paper(value).astype(np.float32)
    darkness = 1.0 - np.minimum(value * (1.0 / np.maximum(paper, 1.0)), 1.0)
    # The trace is a few percent of the page; its typical darkness sets the threshold, so a
    # faint or blurred trace is still found while grid lines (darkness < 0.3) are not.
    histogram = np.bincount((darkness * 255).astype(np.uint8).ravel(), minlength=256)
    level = np.searchsorted(np.cumsum(histogram), 0.995 * darkness.size) / 255.0
    threshold = float(np.clip(0.5 * level, 0.28, 0.5))
    mask = darkness > threshold
    return Ink(darkness, mask, _grid_colour(image), threshold)
