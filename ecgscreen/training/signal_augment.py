"""Signal-level augmentations: the errors a digitiser makes, applied to a recorded signal.

Training pairs each file's canonical input (what serving sees: the file digitised) with one
painted from the recording itself, distorted the way reading a printout distorts it, and
asks the model to answer both alike (``training.loop``'s consistency term). These are the
distortions measured on the generator's printouts against its truth:

* gain: the calibration pulse read a few percent off (whole page), and per-lead stroke
  width errors on peaks;
* time: the row's ends found a pixel off (a shift, and a stretch of a fraction of a percent);
* band: a printout at 3-6 px/mm keeps less than the recording (extra smoothing);
* gaps: short stretches where the trace was lost (a grid crossing, a label);
* clipping: at 10 mm/mV a 12x1 page's tall peaks run into the neighbouring row.

MONAI's pattern, as in ``augment``: each random transform draws its parameters from the
generator it is given, so a ``(seed, epoch, row)`` stream gives the same batch every time.
Signals are ``(12, N)`` float32 mV; NaN (not printed) stays NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..contract import SIGNAL_RATE_HZ

__all__ = ["SIGNAL_AUGMENTS", "distort_signal"]

SIGNAL_AUGMENTS = ("gain", "time", "band", "gaps", "clip")


def _gain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    page = rng.uniform(0.94, 1.06)
    lead = rng.uniform(0.97, 1.03, (x.shape[0], 1))
    return x * (page * lead).astype(np.float32)


def _time(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[1]
    shift = rng.uniform(-0.012, 0.012) * SIGNAL_RATE_HZ
    stretch = rng.uniform(0.995, 1.005)
    source = np.arange(n) * stretch + shift
    k = np.arange(n)
    return np.stack([np.interp(source, k, row, left=np.nan, right=np.nan) for row in x]).astype(np.float32)


def _band(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(0.001, 0.005) * SIGNAL_RATE_HZ
    finite = np.isfinite(x)
    smooth = gaussian_filter1d(np.where(finite, x, 0.0), sigma, axis=1, mode="nearest")
    weight = gaussian_filter1d(finite.astype(np.float32), sigma, axis=1, mode="nearest")
    return np.where(finite, smooth / np.maximum(weight, 1e-6), np.nan).astype(np.float32)


def _gaps(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = x.copy()
    for _ in range(int(rng.integers(1, 6))):
        lead = int(rng.integers(x.shape[0]))
        start = int(rng.integers(x.shape[1]))
        x[lead, start : start + int(rng.uniform(0.01, 0.04) * SIGNAL_RATE_HZ)] = np.nan
    return x


def _clip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    limit = rng.uniform(1.0, 1.8)
    return np.clip(x, -limit, limit)


_TRANSFORMS = {"gain": _gain, "time": _time, "band": _band, "gaps": _gaps, "clip": _clip}


def distort_signal(signal: np.ndarray, spec: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """``signal`` with each distortion of ``spec`` (name -> probability) applied by chance.

    Every distortion draws its coin and parameters whether applied or not, so one outcome
    never shifts the next's draws (as ``augment._Randomizable``)."""
    unknown = sorted(set(spec) - set(SIGNAL_AUGMENTS))
    if unknown:
        raise ValueError(
            f"unknown signal augmentation(s) {unknown}; expected some of {list(SIGNAL_AUGMENTS)}"
        )
    out = np.asarray(signal, dtype=np.float32)
    for name in SIGNAL_AUGMENTS:
        if name not in spec:
            continue
        apply = rng.random() < float(spec[name])
        stream = np.random.default_rng(rng.integers(2**63))
        if apply:
            out = _TRANSFORMS[name](out, stream)
    return out
