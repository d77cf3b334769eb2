"""Scan and photo artefacts: what happens to a printout between the cart and the archive.

MONAI-style: ``draw_artefacts`` draws the random parameters, ``apply_artefacts`` is the
deterministic transform, so a label file can record exactly what was done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

__all__ = [
    "ScanArtefacts",
    "draw_artefacts",
    "draw_world_extras",
    "apply_artefacts",
    "curl_field",
    "ACQUISITIONS",
]

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
    # A photo's world around the page: the page fills ``page_scale`` of the picture on a
    # ``background``, curls (a bow of ``curl`` x the picture's height), has ``creases``
    # (angle rad, offset from the centre as a fraction of the diagonal, depth 0..1) and
    # ``objects`` lying beside it (x0, y0, x1, y1 as fractions of the picture; r, g, b).
    page_scale: float = 1.0
    background: tuple[int, int, int] | None = None
    curl: float = 0.0
    creases: tuple[tuple[float, float, float], ...] = ()
    objects: tuple[tuple[float, ...], ...] = ()


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


def draw_world_extras(rng: np.random.Generator, a: ScanArtefacts) -> ScanArtefacts:
    """What the first acquisitions left out, drawn after them: creases on scans and photos;
    on photos, a background and objects around a smaller page, and paper curl."""
    from dataclasses import replace

    if a.kind == "clean":
        return a
    creases = ()
    if rng.random() < 0.3:
        n = int(rng.integers(1, 4))
        creases = tuple(
            (float(rng.uniform(0, np.pi)), float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.08, 0.25)))
            for _ in range(n)
        )
    a = replace(a, creases=creases)
    if a.kind != "photo":
        return a
    scale = float(rng.uniform(0.75, 0.95)) if rng.random() < 0.6 else 1.0
    background = tuple(int(v) for v in rng.choice([(92, 64, 40), (150, 110, 70), (60, 60, 65), (200, 200, 195),
                                                   (30, 30, 35)]))  # fmt: skip
    curl = float(rng.uniform(0.005, 0.02)) if rng.random() < 0.5 else 0.0
    objects = ()
    if scale < 0.9 and rng.random() < 0.4:  # a pen or a phone in a corner, off the page
        corner = int(rng.integers(4))
        x0, y0 = (0.0 if corner % 2 == 0 else 0.93), (0.0 if corner < 2 else 0.9)
        colour = tuple(float(v) for v in rng.integers(0, 256, 3))
        objects = ((x0, y0, x0 + 0.07, y0 + 0.1, *colour),)
    return replace(a, page_scale=scale, background=background, curl=curl, objects=objects)


def curl_field(shape: tuple[int, int], curl: float) -> np.ndarray:
    """Row offsets (px) of a curled page: a bow that lifts the middle columns, as paper does
    when it is not held flat (output row r, column c samples input row r + field[c])."""
    h, w = shape
    x = np.linspace(-1.0, 1.0, w)
    return (curl * h * (1.0 - x**2)).astype(np.float32)


def _curl(pixels: np.ndarray, curl: float, order: int, fill) -> np.ndarray:
    from scipy import ndimage

    h, w = pixels.shape[:2]
    rows = np.arange(h, dtype=np.float32)[:, None] + curl_field((h, w), curl)[None, :]
    cols = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
    channels = pixels[..., None] if pixels.ndim == 2 else pixels
    out = np.stack([
        ndimage.map_coordinates(channels[..., c], [rows, cols], order=order, mode="constant", cval=fill[c])
        for c in range(channels.shape[-1])
    ], axis=-1)  # fmt: skip
    return out[..., 0] if pixels.ndim == 2 else out


def _warp_coefficients(size: tuple[int, int], a: ScanArtefacts) -> list[float]:
    """PIL PERSPECTIVE coefficients (output -> input) for rotation about the centre plus a
    keystone that pulls the top and left edges in."""
    w, h = size
    theta = np.deg2rad(a.rotation_deg)
    # Where the page corners land: keystone first, then rotation about the centre.
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    kx, ky = a.keystone
    centre = np.array([w / 2, h / 2])
    warped = centre + (corners - centre) * a.page_scale  # a photo's page lies within the picture
    warped[0] += [kx * w, ky * h]
    warped[1] += [-kx * w, 0.0]
    warped[3] += [0.0, -ky * h]
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
    fill = a.background or background
    if a.rotation_deg or any(a.keystone) or a.page_scale != 1.0:
        coefficients = _warp_coefficients(image.size, a)
        image = image.transform(
            image.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR,
            fillcolor=fill,
        )  # fmt: skip
    if a.curl:
        image = Image.fromarray(_curl(np.asarray(image), a.curl, 1, fill).astype(np.uint8))
    if a.objects:
        pixels = np.array(image)
        h, w = pixels.shape[:2]
        for x0, y0, x1, y1, *colour in a.objects:
            pixels[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = colour
        image = Image.fromarray(pixels)
    if a.blur_px > 0:
        image = image.filter(ImageFilter.GaussianBlur(a.blur_px))
    pixels = np.asarray(image, dtype=np.float32)
    h, w = pixels.shape[:2]
    if a.shadow > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = np.cos(a.shadow_angle) * (xx / w - 0.5) + np.sin(a.shadow_angle) * (yy / h - 0.5)
        light = 1.0 - a.shadow * np.clip(ramp + 0.5, 0.0, 1.0) ** 2
        pixels *= light[..., None]
    for angle, offset, depth in a.creases:  # a fold: a dark line with a light edge beside it
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        distance = (np.cos(angle) * (xx - w / 2) + np.sin(angle) * (yy - h / 2)) - offset * np.hypot(w, h)
        width = 0.002 * np.hypot(w, h) + 1.0
        shade = (
            1.0
            - depth * np.exp(-((distance / width) ** 2))
            + 0.5 * depth * np.exp(-(((distance - 2 * width) / width) ** 2))
        )
        pixels *= np.clip(shade, 0.0, 1.2)[..., None]
    pixels *= np.asarray(a.cast, dtype=np.float32)
    if a.noise_sd > 0:
        pixels += np.random.default_rng(a.seed).normal(0.0, a.noise_sd, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
