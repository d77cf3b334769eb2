"""Scan and photo artefacts: what happens to a printout between the cart and the archive.

MONAI-style: ``draw_artefacts`` draws the random parameters, ``apply_artefacts`` is the
deterministic transform, so a label file can record exactly what was done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["ScanArtefacts", "draw_artefacts", "apply_artefacts", "ACQUISITIONS"]

ACQUISITIONS = ("clean", "scan", "photo")


@dataclass(frozen=True)
class ScanArtefacts:
    """Parameters of one acquisition. ``rotation_deg`` is counter-clockwise, as PIL rotates."""

    kind: str = "clean"
    rotation_deg: float = 0.0
    keystone: tuple[float, float] = (0.0, 0.0)  # perspective: fractional inset of top/left edges
    blur_px: float = 0.0
    noise_sd: float = 0.0  # grey levels
    shadow: float = 0.0  # depth of uneven light, 0..1
    shadow_angle: float = 0.0  # direction the light falls off (radians)
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gain (white balance)
    seed: int = 0  # for the sensor noise


def draw_artefacts(rng: np.random.Generator, strength: float = 1.0) -> ScanArtefacts:
    """A random acquisition: 30 % clean exports, 40 % flatbed scans, 30 % phone photos."""
    kind = str(rng.choice(ACQUISITIONS, p=[0.3, 0.4, 0.3]))
    seed = int(rng.integers(2**31))
    if kind == "clean":
        return ScanArtefacts(seed=seed)
    s = strength
    rotation = float(rng.uniform(-3.0, 3.0))
    if kind == "scan":
        return ScanArtefacts(
            kind=kind,
            rotation_deg=rotation,
            blur_px=float(rng.uniform(0.0, 0.8) * s),
            noise_sd=float(rng.uniform(0.0, 6.0) * s),
            shadow=float(rng.uniform(0.0, 0.15) * s),
            shadow_angle=float(rng.uniform(0, 2 * np.pi)),
            cast=tuple(float(c) for c in rng.uniform(0.95, 1.0, 3)),
            seed=seed,
        )
    return ScanArtefacts(
        kind=kind,
        rotation_deg=rotation,
        keystone=(float(rng.uniform(-0.02, 0.02) * s), float(rng.uniform(-0.015, 0.015) * s)),
        blur_px=float(rng.uniform(0.3, 1.2) * s),
        noise_sd=float(rng.uniform(2.0, 9.0) * s),
        shadow=float(rng.uniform(0.1, 0.4) * s),
        shadow_angle=float(rng.uniform(0, 2 * np.pi)),
        cast=tuple(float(c) for c in rng.uniform(0.82, 1.0, 3)),
        seed=seed,
    )


def _warp_coefficients(size: tuple[int, int], a: ScanArtefacts) -> list[float]:
    """PIL PERSPECTIVE coefficients (output -> input) for rotation about the centre plus a
    keystone that pulls the top and left edges in."""
    w, h = size
    theta = np.deg2rad(a.rotation_deg)
    # Where the page corners land: keystone first, then rotation about the centre.
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    kx, ky = a.keystone
    warped = corners.copy()
    warped[0] += [kx * w, ky * h]
    warped[1] += [-kx * w, 0.0]
    warped[3] += [0.0, -ky * h]
    centre = np.array([w / 2, h / 2])
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    warped = (warped - centre) @ rot.T + centre
    # Solve the homography that maps output (warped) points back to input (corner) points.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(warped, corners, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows), np.array(rhs)).tolist()


def apply_artefacts(image: Image.Image, a: ScanArtefacts, background=(255, 255, 255)) -> Image.Image:
    """Apply ``a`` to an RGB image. Deterministic for a given ``a``."""
    if a.kind == "clean":
        return image
    if a.rotation_deg or any(a.keystone):
        coefficients = _warp_coefficients(image.size, a)
        image = image.transform(
            image.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR,
            fillcolor=background,
        )  # fmt: skip
    if a.blur_px > 0:
        image = image.filter(ImageFilter.GaussianBlur(a.blur_px))
    pixels = np.asarray(image, dtype=np.float32)
    h, w = pixels.shape[:2]
    if a.shadow > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = np.cos(a.shadow_angle) * (xx / w - 0.5) + np.sin(a.shadow_angle) * (yy / h - 0.5)
        light = 1.0 - a.shadow * np.clip(ramp + 0.5, 0.0, 1.0) ** 2
        pixels *= light[..., None]
    pixels *= np.asarray(a.cast, dtype=np.float32)
    if a.noise_sd > 0:
        pixels += np.random.default_rng(a.seed).normal(0.0, a.noise_sd, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
