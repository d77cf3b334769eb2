"""Augmentations: deterministic twins do what they say; random ones draw, then apply."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscreen.training.augment import (
    BrightnessContrast,
    GaussianBlur,
    MotionBlur,
    RandBrightnessContrast,
    RandGaussianBlur,
    RandMotionBlur,
    build_augment,
)


@pytest.fixture
def trace():
    img = np.ones((48, 64), dtype=np.float32)
    img[24, :] = 0.0  # a horizontal ink line
    img[:, 32] = 0.0  # a vertical one
    return img


@pytest.mark.parametrize(
    "transform", [GaussianBlur(1.0), BrightnessContrast(0.1, 0.8), MotionBlur(5, 30.0)], ids=repr
)
def test_shape_dtype_and_range_are_kept(transform, trace):
    out = transform(trace)
    assert out.shape == trace.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, trace)


def test_blur_spreads_ink_and_keeps_its_mass(trace):
    blurred = GaussianBlur(1.5)(trace)
    assert blurred[24, 10] > 0.2 and blurred[22, 10] < 1.0  # the line fades and widens
    assert (1 - blurred).sum() == pytest.approx((1 - trace).sum(), rel=1e-3)
    assert np.array_equal(GaussianBlur(0)(trace), trace)


def test_motion_blur_smears_along_its_direction(trace):
    horizontal = MotionBlur(7, 0.0)(trace)
    assert horizontal[24, 10] == pytest.approx(0.0)  # along the horizontal line: still ink
    assert horizontal[10, 32] > 0.5  # across the vertical line: smeared
    vertical = MotionBlur(7, 90.0)(trace)
    assert vertical[10, 32] == pytest.approx(0.0) and vertical[24, 10] > 0.5
    kernel = MotionBlur(5, 45.0).kernel
    assert kernel.sum() == pytest.approx(1.0)
    assert np.count_nonzero(kernel) == np.count_nonzero(np.diag(kernel[::-1])) >= 3  # on the 45 deg diagonal


def test_brightness_contrast_formula():
    img = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    out = BrightnessContrast(brightness=0.1, contrast=0.5)(img)
    assert np.allclose(out, [[0.35, 0.6, 0.85]])
    assert np.allclose(BrightnessContrast(0.3, 1.0)(img), [[0.3, 0.8, 1.0]])  # clipped


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: GaussianBlur(-1), "sigma"),
        (lambda: BrightnessContrast(2.0), "brightness"),
        (lambda: BrightnessContrast(0, -1), "contrast"),
        (lambda: MotionBlur(0), "length"),
        (lambda: RandGaussianBlur(prob=1.5), "prob"),
        (lambda: RandGaussianBlur(sigma=(2.0, 1.0)), "sigma"),
        (lambda: build_augment({"rotate": 0.5}), "rotate"),
    ],
)
def test_bad_parameters_raise_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_image_must_be_2d():
    with pytest.raises(ValueError, match=r"\(3, 4, 4\)"):
        GaussianBlur(1.0)(np.zeros((3, 4, 4), dtype=np.float32))


def test_random_transforms_draw_then_apply_and_are_reproducible(trace):
    blur = RandGaussianBlur(prob=1.0, sigma=(0.5, 2.0))
    blur.randomize(np.random.default_rng(0))
    drawn = blur._transform
    assert isinstance(drawn, GaussianBlur) and 0.5 <= drawn.sigma <= 2.0
    assert np.array_equal(blur(trace), drawn(trace))  # no rng: applies what was drawn
    chain = build_augment({"blur": 0.5, "brightness_contrast": 0.5, "motion_blur": 0.5})
    a = chain(trace, np.random.default_rng([1, 2, 3]))
    b = chain(trace, np.random.default_rng([1, 2, 3]))
    c = [chain(trace, np.random.default_rng([1, 2, k])) for k in range(8)]
    assert np.array_equal(a, b)
    assert any(not np.array_equal(a, other) for other in c)
    never = RandMotionBlur(prob=0.0)
    assert np.array_equal(never(trace, np.random.default_rng(0)), trace)
    assert isinstance(RandBrightnessContrast(prob=1.0), RandBrightnessContrast)
    assert build_augment({}) is None
