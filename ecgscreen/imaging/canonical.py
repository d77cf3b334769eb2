"""The canonical model input: twelve 2.5 s lead panels, 6 rows x 2 columns, redrawn cleanly.

Whatever the file (scan, photo, PDF, DICOM waveform), intake reduces each lead to its
*column envelope*: for every pixel column of its panel, the lowest and highest voltage the
trace reaches in that slice of time. ``paint`` draws envelopes with one pen, one scale and no
grid, so a printout and the raw signal of the same ECG give nearly the same picture:

* panel ``(row r, column c)`` holds lead ``CANONICAL_COLUMNS[c][r]`` over its standard 3x4
  window (``leads.canonical_window``), left limb leads, right chest leads;
* time runs left to right at ``size / 2`` pixels per 2.5 s; voltage at ``MV_FRACTION`` of the
  panel height per mV, baseline at ``BASELINE_FRACTION`` from the panel top, clipped at the
  panel edges; black ink on white.

The model sees this image replicated to three channels and normalised with ImageNet
mean/std (``to_model_input``), as timm's pretrained ResNets expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract import CANONICAL_SIZE, IMAGENET_MEAN, IMAGENET_STD
from ..leads import CANONICAL_COLUMNS, LEADS, canonical_window

__all__ = [
    "Envelope",
    "panel_box",
    "paint",
    "envelope_from_signal",
    "signal_to_canonical",
    "to_model_input",
]

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_STD = np.array(IMAGENET_STD, dtype=np.float32)
BASELINE_FRACTION = 0.5
MV_FRACTION = 0.28  # 1 mV = 28 % of the panel height: about +-1.8 mV fit
PEN_PX = 1.6  # line width at the canonical size, scaled with the size


@dataclass(frozen=True)
class Envelope:
    """Lowest and highest voltage (mV) per panel column; NaN where the trace is unknown."""

    low: np.ndarray
    high: np.ndarray


def panel_box(lead: str, size: int = CANONICAL_SIZE) -> tuple[int, int, int, int]:
    """Pixel box ``(top, left, bottom, right)`` of ``lead``'s panel in the canonical image."""
    for column, leads in enumerate(CANONICAL_COLUMNS):
        if lead in leads:
            row = leads.index(lead)
            h, w = size // 6, size // 2
            return row * h, column * w, (row + 1) * h, (column + 1) * w
    raise ValueError(f"unknown lead {lead!r}; expected one of {', '.join(LEADS)}")


def paint(envelopes: dict[str, Envelope], size: int = CANONICAL_SIZE) -> np.ndarray:
    """Draw the envelopes into a ``(size, size)`` uint8 image (255 white, 0 ink).

    Each column's ink covers ``[low, high]`` widened by half the pen on either side, with
    fractional coverage at the ends (anti-aliased). Leads missing from ``envelopes`` stay
    blank.
    """
    image = np.full((size, size), 255, dtype=np.uint8)
    h, w = size // 6, size // 2
    half_pen = PEN_PX * size / CANONICAL_SIZE / 2
    rows = np.arange(h, dtype=np.float32)[:, None]
    for lead, env in envelopes.items():
        if env.low.shape != (w,) or env.high.shape != (w,):
            raise ValueError(f"envelope of {lead} must have {w} columns, got {env.low.shape}")
        to_px = lambda mv: BASELINE_FRACTION * h - mv * MV_FRACTION * h  # noqa: E731 (y down)
        top = np.clip(to_px(env.high), 0, h) - half_pen  # high voltage = small y
        bottom = np.clip(to_px(env.low), 0, h) + half_pen
        ink = np.clip(np.minimum(rows + 1, bottom[None, :]) - np.maximum(rows, top[None, :]), 0, 1)
        ink = np.nan_to_num(ink, nan=0.0)
        t, left, b, r = panel_box(lead, size)
        image[t:b, left:r] = np.round(255 * (1 - ink)).astype(np.uint8)
    return image


def envelope_from_signal(
    values: np.ndarray, sample_rate: float, t0: float, t1: float, columns: int
) -> Envelope:
    """Column envelope of ``values`` (mV) between ``t0`` and ``t1`` seconds.

    Each column spans ``(t1 - t0) / columns`` seconds; its range is widened to meet its
    neighbours so the drawn line stays continuous through steep QRS slopes.
    """
    edges = t0 + (t1 - t0) * np.arange(columns + 1) / columns
    idx = np.clip(np.round(edges * sample_rate).astype(int), 0, len(values) - 1)
    # min/max over [idx[c], idx[c+1]] inclusive: the edge sample is shared with the next column
    values = values[: idx[-1] + 1]  # reduceat's last slice runs to the end of the array
    edge = values[idx[1:]]
    low = np.minimum(np.minimum.reduceat(values, idx[:-1]), edge)
    high = np.maximum(np.maximum.reduceat(values, idx[:-1]), edge)
    return Envelope(low, high)


def signal_to_canonical(
    signal: np.ndarray, sample_rate: float, size: int = CANONICAL_SIZE, leads=LEADS
) -> np.ndarray:
    """The canonical image of a ``(n_leads, N)`` signal in mV (the waveform path)."""
    envelopes = {}
    for lead, values in zip(leads, signal, strict=True):
        t0, t1 = canonical_window(lead)
        envelopes[lead] = envelope_from_signal(
            np.asarray(values, dtype=np.float64), sample_rate, t0, t1, size // 2
        )
    return paint(envelopes, size)


def to_model_input(canonical: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 canonical image -> ``(3, H, W)`` float32, ImageNet-normalised."""
    gray = canonical.astype(np.float32) / 255.0
    return (gray[None, :, :] - _MEAN[:, None, None]) / _STD[:, None, None]
