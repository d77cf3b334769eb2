"""Decode raster pictures with a pixel budget, at the working resolution intake needs.

PNG, JPEG, TIFF, BMP, GIF, WebP and HEIC/HEIF (phones' photos, through ``pillow-heif``). An
animated GIF or WebP gives its first frame, a HEIF its primary image. A multi-page TIFF (a fax
or a scanner's batch) gives its first page that holds an ECG, which here simply means: not a
reduced-resolution thumbnail, not too small, and not blank (some ink on it); at most
``Limits.max_dicom_frames`` pages are looked at, each within the pixel limit.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..contract import PAGE_MM
from .errors import IntakeError
from .limits import Limits

try:  # HEIC/HEIF; without pillow-heif such a file is refused as `unsupported_format`
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - a deployment without the decoder
    HEIF_DECODER = False
else:
    register_heif_opener()
    HEIF_DECODER = True

__all__ = ["decode_image", "has_ink", "to_rgb_array", "HEIF_DECODER", "WORKING_PX_PER_MM"]

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


_NAMES = {"jpeg": "JPEG", "heif": "HEIC/HEIF", "webp": "WebP"}
# Messages of Pillow and its plugins (libwebp, libheif) when the data stops early.
_TRUNCATED = ("truncated", "broken", "end of file", "unexpected end")


def _is_truncated(exc: BaseException) -> bool:
    return any(word in str(exc).lower() for word in _TRUNCATED)


def _declared_short(data: bytes, fmt: str) -> bool:
    """The container says it is longer than the file (WebP's RIFF size, BMP's file size):
    libwebp only answers "could not create decoder object" for a cut file."""
    if fmt == "webp" and len(data) >= 8:
        return int.from_bytes(data[4:8], "little") + 8 > len(data)
    if fmt == "bmp" and len(data) >= 6:
        return int.from_bytes(data[2:6], "little") > len(data)
    return False


def _open(data: bytes, fmt: str, name: str, limits: Limits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise IntakeError(
            "too_many_pixels",
            f"the {name} declares over {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels (a decompression bomb); "
            f"the limit is {limits.max_pixels / 1e6:.0f}",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, RuntimeError) as exc:
        if _declared_short(data, fmt) or (not isinstance(exc, UnidentifiedImageError) and _is_truncated(exc)):
            raise IntakeError(
                "truncated", f"the {name} ends before its header or pixel data does: the file is truncated"
            ) from None
        raise IntakeError("corrupt", f"the {name} header cannot be read ({type(exc).__name__})") from None


def _decode_frame(image: Image.Image, fmt: str, name: str, limits: Limits) -> np.ndarray:
    """The current frame of ``image`` as (H, W, 3) uint8, within the limits, reduced."""
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
    except (OSError, SyntaxError, ValueError, EOFError, RuntimeError) as exc:
        if _is_truncated(exc):
            raise IntakeError(
                "truncated", f"the {name} ends before its pixel data does: the file is truncated"
            ) from None
        raise IntakeError(
            "corrupt", f"the {name} pixel data cannot be decoded: the file is corrupt ({type(exc).__name__})"
        ) from None
    remaining = _reduction(image.size)
    if remaining > 1:
        if image.mode.startswith("I") or image.mode == "F":  # Pillow reduces 8-bit modes only
            image = Image.fromarray(to_rgb_array(image))
        image = image.reduce(remaining)
    return to_rgb_array(image)


def has_ink(rgb: np.ndarray) -> bool:
    """Whether a decoded page is more than blank paper: at least 0.1 % of its pixels clearly
    darker (by 48 of 255 levels) than the paper (the median)."""
    grey = rgb.mean(axis=2)
    return bool(np.mean(grey < np.median(grey) - 48) >= 0.001)


def _first_ecg_page(image: Image.Image, name: str, limits: Limits) -> np.ndarray:
    """A multi-page TIFF's first page that holds an ECG (see the module's docstring); when
    none does, the first readable page (blank: refused downstream as not an ECG)."""
    fallback: np.ndarray | None = None
    refusal: IntakeError | None = None
    for index in range(limits.max_dicom_frames):
        if index:
            try:
                image.seek(index)
            except EOFError:
                break  # no more pages
            except (OSError, SyntaxError, ValueError, RuntimeError) as exc:
                raise IntakeError(
                    "truncated" if _is_truncated(exc) else "corrupt",
                    f"the TIFF's page {index + 1} cannot be read ({type(exc).__name__})",
                ) from None
        if int(getattr(image, "tag_v2", {}).get(254, 0)) & 1:  # NewSubfileType: a thumbnail
            continue
        try:
            page = _decode_frame(image, "tiff", name, limits)
        except IntakeError as error:
            if error.reason != "no_layout":  # too small: a thumbnail or a label, try the next
                raise
            refusal = refusal or error
            continue
        if has_ink(page):
            return page
        if fallback is None:
            fallback = page
    if fallback is not None:
        return fallback
    raise refusal or IntakeError(
        "no_layout", f"none of the first {limits.max_dicom_frames} TIFF pages holds a picture"
    )


def decode_image(data: bytes, fmt: str, limits: Limits) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the first frame (a TIFF: of its first page that holds an ECG),
    reduced to about the working resolution; an ``IntakeError`` when it cannot be read."""
    name = _NAMES.get(fmt, fmt.upper())
    if fmt == "heif" and not HEIF_DECODER:
        raise IntakeError(
            "unsupported_format",
            "HEIC/HEIF photos need the pillow-heif decoder, which this installation lacks; "
            "save the photo as JPEG",
        )
    image = _open(data, fmt, name, limits)
    try:
        if fmt == "tiff":
            return _first_ecg_page(image, name, limits)
        return _decode_frame(image, fmt, name, limits)
    finally:
        image.close()
