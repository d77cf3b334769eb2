"""Training augmentations of the study: Gaussian blur, brightness/contrast, motion blur.

MONAI's pattern: each deterministic transform is a small callable that validates its
parameters in ``__init__`` and is pure in ``__call__``; its random twin draws the parameters
in ``randomize(rng)`` and then applies the deterministic one. Training only: serving and
evaluation never import this module.

Images are ``(H, W)`` float32 grayscale in [0, 1] (white paper = 1, ink = 0); every
transform returns the same shape and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "GaussianBlur",
    "BrightnessContrast",
    "MotionBlur",
    "RandGaussianBlur",
    "RandBrightnessContrast",
    "RandMotionBlur",
    "RandChain",
    "build_augment",
]


def _check_image(img: np.ndarray) -> np.ndarray:
    if img.ndim != 2:
        raise ValueError(f"expected an (H, W) grayscale image, got shape {img.shape}")
    return img


def _check_range(
    name: str, value: Sequence[float], low: float, high: float = math.inf
) -> tuple[float, float]:
    a, b = (float(v) for v in value)
    if not (low <= a <= b <= high):
        raise ValueError(f"{name} range {value!r} must be ordered and within [{low}, {high}]")
    return a, b


def _check_prob(prob: float) -> float:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"prob must be in [0, 1], got {prob}")
    return float(prob)


class GaussianBlur:
    """Blur with a Gaussian of standard deviation ``sigma`` pixels (0: unchanged)."""

    def __init__(self, sigma: float):
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = _check_image(img)
        if self.sigma == 0:
            return img
        return ndimage.gaussian_filter(img, self.sigma, mode="nearest").astype(img.dtype, copy=False)


class BrightnessContrast:
    """``(img - 0.5) * contrast + 0.5 + brightness``, clipped to [0, 1]."""

    def __init__(self, brightness: float = 0.0, contrast: float = 1.0):
        if not -1.0 <= brightness <= 1.0:
            raise ValueError(f"brightness must be in [-1, 1], got {brightness}")
        if contrast < 0:
            raise ValueError(f"contrast must be >= 0, got {contrast}")
        self.brightness, self.contrast = float(brightness), float(contrast)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = _check_image(img)
        out = (img - 0.5) * self.contrast + 0.5 + self.brightness
        return np.clip(out, 0.0, 1.0).astype(img.dtype, copy=False)


class MotionBlur:
    """Average along a straight line of ``length`` pixels at ``angle_deg`` (camera shake)."""

    def __init__(self, length: int, angle_deg: float = 0.0):
        if int(length) != length or length < 1:
            raise ValueError(f"length must be a positive integer, got {length}")
        self.length, self.angle_deg = int(length), float(angle_deg)
        self.kernel = self._kernel()

    def _kernel(self) -> np.ndarray:
        n = self.length if self.length % 2 else self.length + 1
        kernel = np.zeros((n, n), dtype=np.float32)
        c, theta = (n - 1) / 2, math.radians(self.angle_deg)
        for t in np.linspace(-(self.length - 1) / 2, (self.length - 1) / 2, 4 * self.length):
            kernel[int(round(c - t * math.sin(theta))), int(round(c + t * math.cos(theta)))] = 1.0
        return kernel / kernel.sum()

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = _check_image(img)
        if self.length == 1:
            return img
        return ndimage.convolve(img, self.kernel.astype(img.dtype), mode="nearest")


class _Randomizable:
    """Draws its parameters from a ``numpy.random.Generator`` (``randomize``), then applies."""

    def __init__(self, prob: float):
        self.prob = _check_prob(prob)
        self._transform: Any = None

    def _draw(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def randomize(self, rng: np.random.Generator) -> None:
        # always consume the same draws so one transform's outcome never shifts the next's
        apply = rng.random() < self.prob
        transform = self._draw(rng)
        self._transform = transform if apply else None

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if rng is not None:
            self.randomize(rng)
        return _check_image(img) if self._transform is None else self._transform(img)


class RandGaussianBlur(_Randomizable):
    """With probability ``prob``, a ``GaussianBlur`` with sigma uniform in ``sigma``."""

    def __init__(self, prob: float = 0.3, sigma: Sequence[float] = (0.3, 1.2)):
        super().__init__(prob)
        self.sigma = _check_range("sigma", sigma, 0.0)

    def _draw(self, rng: np.random.Generator) -> GaussianBlur:
        return GaussianBlur(rng.uniform(*self.sigma))


class RandBrightnessContrast(_Randomizable):
    """With probability ``prob``, brightness and contrast drawn uniformly from their ranges."""

    def __init__(
        self,
        prob: float = 0.5,
        brightness: Sequence[float] = (-0.15, 0.15),
        contrast: Sequence[float] = (0.7, 1.3),
    ):
        super().__init__(prob)
        self.brightness = _check_range("brightness", brightness, -1.0, 1.0)
        self.contrast = _check_range("contrast", contrast, 0.0)

    def _draw(self, rng: np.random.Generator) -> BrightnessContrast:
        return BrightnessContrast(rng.uniform(*self.brightness), rng.uniform(*self.contrast))


class RandMotionBlur(_Randomizable):
    """With probability ``prob``, a ``MotionBlur`` of random length and direction."""

    def __init__(self, prob: float = 0.3, length: Sequence[int] = (3, 7)):
        super().__init__(prob)
        self.length = tuple(int(v) for v in _check_range("length", length, 1.0))

    def _draw(self, rng: np.random.Generator) -> MotionBlur:
        return MotionBlur(int(rng.integers(self.length[0], self.length[1] + 1)), rng.uniform(0.0, 180.0))


class RandChain:
    """Apply random transforms in order, each drawing from the same generator."""

    def __init__(self, transforms: Sequence[_Randomizable]):
        self.transforms = list(transforms)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            img = t(img, rng)
        return img


def build_augment(spec: dict[str, float] | None) -> RandChain | None:
    """The study's chain from probabilities ``{"blur", "brightness_contrast", "motion_blur"}``."""
    if not spec:
        return None
    known = {
        "blur": RandGaussianBlur,
        "brightness_contrast": RandBrightnessContrast,
        "motion_blur": RandMotionBlur,
    }
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; expected some of {sorted(known)}")
    return RandChain([known[name](prob=float(spec[name])) for name in known if spec.get(name, 0.0) > 0])
