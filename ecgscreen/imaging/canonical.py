"""The canonical model input: twelve 2.5 s lead panels, 6 rows x 2 columns, painted from
the 12-lead signal.

Every file becomes an ``EcgSignal`` first (a waveform is one; a printout is digitised into
one), and ``paint`` is the only code that draws the model input, so a printout and the raw
waveform of the same ECG give nearly the same picture:

* panel ``(row r, column c)`` holds lead ``CANONICAL_COLUMNS[c][r]`` over its standard 3x4
  window (``leads.canonical_window``), left limb leads, right chest leads;
* before drawing, each lead is band-limited to what a printout keeps (a Gaussian of
  ``SMOOTH_S``: a 25 mm/s printout read at 4 px/mm resolves ~10 ms) and its window's median
  (the isoelectric level) is moved to the panel's baseline, so sensor noise a printout cannot
  show, and a digitiser's baseline offset, never reach the model;
* time runs left to right at ``size / 2`` pixels per 2.5 s; each column draws the range the
  signal covers in its slice of time (its *envelope*), so a QRS spike narrower than a column
  keeps its height; voltage at ``MV_FRACTION`` of the panel height per mV, baseline at
  ``BASELINE_FRACTION`` from the panel top, clipped at the panel edges; black on white.

The model sees this image replicated to three channels and normalised with ImageNet
mean/std (``to_model_input``), as timm's pretrained ResNets expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..contract import CANONICAL_SIZE, IMAGENET_MEAN, IMAGENET_STD
from ..leads import CANONICAL_WINDOW_S, LEADS, canonical_window, panel_box
from .signal import EcgSignal

__all__ = [
    "Envelope",
    "paint",
    "paint_envelopes",
    "band_limit",
    "envelope_from_signal",
    "signal_to_canonical",
    "to_model_input",
]

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_STD = np.array(IMAGENET_STD, dtype=np.float32)
BASELINE_FRACTION = 0.5
MV_FRACTION = 0.28  # 1 mV = 28 % of the panel height: about +-1.8 mV fit
PEN_PX = 1.6  # line width at the canonical size, scaled with the size
SMOOTH_S = 0.004  # Gaussian sigma of the band limit every signal gets before painting


@dataclass(frozen=True)
class Envelope:
    """Lowest and highest voltage (mV) per panel column; NaN where the trace is unknown."""

    low: np.ndarray
    high: np.ndarray


def paint_envelopes(envelopes: dict[str, Envelope], size: int = CANONICAL_SIZE) -> np.ndarray:
    """Draw the envelopes into a ``(size, size)`` uint8 image (255 white, 0 ink).

    Each column's ink covers ``[low, high]`` widened by half the pen on either side, with
    fractional coverage at the ends (anti-aliased). Leads missing from ``envelopes`` stay
    blank.
    """
    h, w = size // 6, size // 2
    half_pen = PEN_PX * size / CANONICAL_SIZE / 2
    low = np.full((len(LEADS), w), np.nan, dtype=np.float32)
    high = np.full((len(LEADS), w), np.nan, dtype=np.float32)
    for lead, env in envelopes.items():
        if env.low.shape != (w,) or env.high.shape != (w,):
            raise ValueError(f"envelope of {lead} must have {w} columns, got {env.low.shape}")
        i = LEADS.index(lead)
        low[i], high[i] = env.low, env.high
    top = np.clip(BASELINE_FRACTION * h - high * MV_FRACTION * h, 0, h) - half_pen  # y runs down
    bottom = np.clip(BASELINE_FRACTION * h - low * MV_FRACTION * h, 0, h) + half_pen
    rows = np.arange(h, dtype=np.float32)[None, :, None]
    ink = np.clip(np.minimum(rows + 1, bottom[:, None, :]) - np.maximum(rows, top[:, None, :]), 0, 1)
    panels = np.round(255 * (1 - np.nan_to_num(ink, nan=0.0))).astype(np.uint8)  # (12, h, w)
    image = np.full((size, size), 255, dtype=np.uint8)
    for i, lead in enumerate(LEADS):
        t, left, b, r = panel_box(lead, size)
        image[t:b, left:r] = panels[i]
    return image


def envelope_from_signal(
    values: np.ndarray, sample_rate: float, t0: float, t1: float, columns: int
) -> Envelope:
    """Column envelope of ``values`` (mV, sample k at k / sample_rate s) between ``t0`` and
    ``t1`` seconds; NaN samples are ignored, a column with none left is NaN.

    Each column spans ``(t1 - t0) / columns`` seconds; its range is widened to meet its
    neighbours so the drawn line stays continuous through steep QRS slopes.
    """
    edges = t0 + (t1 - t0) * np.arange(columns + 1) / columns
    idx = np.clip(np.round(edges * sample_rate).astype(int), 0, len(values) - 1)
    # min/max over [idx[c], idx[c+1]] inclusive: the edge sample is shared with the next column
    values = values[: idx[-1] + 1]  # reduceat's last slice runs to the end of the array
    edge = values[idx[1:]]
    low = np.fmin(np.fmin.reduceat(values, idx[:-1]), edge)
    high = np.fmax(np.fmax.reduceat(values, idx[:-1]), edge)
    return Envelope(low, high)


def band_limit(values: np.ndarray, sample_rate: float) -> np.ndarray:
    """``values`` (``(..., N)``) smoothed along the last axis with a Gaussian of ``SMOOTH_S``;
    NaN samples are left out of their neighbours' averages and stay NaN."""
    finite = np.isfinite(values)
    sigma = SMOOTH_S * sample_rate
    filled = np.where(finite, values, 0.0)
    weight = gaussian_filter1d(finite.astype(np.float32), sigma, axis=-1, mode="nearest")
    smooth = gaussian_filter1d(filled.astype(np.float32), sigma, axis=-1, mode="nearest")
    return np.where(finite, smooth / np.maximum(weight, 1e-6), np.nan)


def paint(signal: EcgSignal, size: int = CANONICAL_SIZE) -> np.ndarray:
    """The canonical ``(size, size)`` uint8 image of ``signal`` (255 white, 0 ink)."""
    rate = signal.sample_rate
    margin = int(np.ceil(4 * SMOOTH_S * rate))  # the band limit needs a little context
    length = int(round(CANONICAL_WINDOW_S * rate)) + 1
    n = signal.values.shape[1]
    windows = np.full((len(LEADS), length + 2 * margin), np.nan, dtype=np.float32)
    for i, lead in enumerate(LEADS):
        start = int(round(canonical_window(lead)[0] * rate)) - margin
        lo, hi = max(0, start), min(n, start + windows.shape[1])
        if hi > lo:
            windows[i, lo - start : hi - start] = signal.values[i, lo:hi]
    smooth = band_limit(windows, rate)[:, margin : margin + length]
    present = np.isfinite(smooth).any(axis=1)
    smooth = smooth - np.nanmedian(np.where(present[:, None], smooth, 0.0), axis=1, keepdims=True)
    envelopes = {
        lead: envelope_from_signal(smooth[i], rate, 0.0, CANONICAL_WINDOW_S, size // 2)
        for i, lead in enumerate(LEADS)
        if present[i]
    }
    return paint_envelopes(envelopes, size)


def signal_to_canonical(
    signal: np.ndarray, sample_rate: float, size: int = CANONICAL_SIZE, leads=LEADS
) -> np.ndarray:
    """The canonical image of a ``(n_leads, N)`` recording in mV (the waveform path)."""
    recording = EcgSignal.from_leads(dict(zip(leads, signal, strict=True)), sample_rate)
    return paint(recording, size)


def to_model_input(canonical: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 canonical image -> ``(3, H, W)`` float32, ImageNet-normalised."""
    gray = canonical.astype(np.float32) / 255.0
    return (gray[None, :, :] - _MEAN[:, None, None]) / _STD[:, None, None]
