"""Decode PNG / JPEG / TIFF with a pixel budget, at the working resolution intake needs."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..contract import PAGE_MM
from .errors import IntakeError
from .limits import Limits

__all__ = ["decode_image", "to_rgb_array", "WORKING_PX_PER_MM"]

# Intake works at about 4 px/mm (100 dpi): the canonical input needs ~3 px/mm. Larger scans
# are reduced by an integer factor while decoding (JPEG: in the DCT, nearly free).
WORKING_PX_PER_MM = 4.0


def _reduction(size: tuple[int, int]) -> int:
    """Integer factor that brings a full-page image close to the working resolution."""
    px_per_mm = max(size) / PAGE_MM[0]  # a full A4 page
    return max(1, int(px_per_mm / WORKING_PX_PER_MM))


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8. 16-bit greyscale is stretched to 8 bits."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        lo, hi = np.percentile(values, [0.5, 99.5])
        values = np.clip((values - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
        return np.repeat(values[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = background
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, fmt: str, limits: Limits) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the first frame, reduced to about the working resolution."""
    name = fmt.upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise IntakeError(
            "too_many_pixels",
            f"the {name} declares over {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (a decompression bomb); "
            f"the limit is {limits.max_pixels / 1e6:.0f}",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise IntakeError("corrupt", f"the {name} header cannot be read ({type(exc).__name__})") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise IntakeError(
            "too_many_pixels",
            f"the {name} is {width} x {height} = {width * height / 1e6:.1f} megapixels; "
            f"the limit is {limits.max_pixels / 1e6:.0f} (scan at 300 dpi or less)",
        )
    if width < 200 or height < 100:
        raise IntakeError(
            "no_layout", f"the {name} is only {width} x {height} pixels: too small for a 12-lead ECG"
        )
    factor = _reduction(image.size)
    if fmt == "jpeg" and factor > 1:
        image.draft("RGB", (width // factor, height // factor))
    try:
        image.load()
    except OSError as exc:
        if "truncated" in str(exc) or "broken" in str(exc):
            raise IntakeError(
                "truncated", f"the {name} ends before its pixel data does: the file is truncated"
            ) from None
        raise IntakeError(
            "corrupt", f"the {name} pixel data cannot be decoded: the file is corrupt"
        ) from None
    except (SyntaxError, ValueError, EOFError) as exc:
        raise IntakeError("corrupt", f"the {name} pixel data is corrupt ({type(exc).__name__})") from None
    remaining = _reduction(image.size)
    if remaining > 1:
        image = image.reduce(remaining)
    return to_rgb_array(image)
