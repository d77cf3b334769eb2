"""Detect a file's format from its first bytes, never from its name or declared type."""

from __future__ import annotations

from .errors import IntakeError

__all__ = ["sniff", "FORMATS"]

FORMATS = ("png", "jpeg", "tiff", "bmp", "gif", "webp", "heif", "pdf", "dicom")

# ISO base media file brands of HEIF still images (a phone's HEIC photo is ``heic`` or
# ``mif1``); AVIF (``avif``) is not among them.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")
# BMP's DIB header sizes (OS/2 1.x, BITMAPINFOHEADER ... BITMAPV5HEADER)
_BMP_DIB_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)


def sniff(data: bytes) -> str:
    """One of ``FORMATS`` for ``data``, or an ``IntakeError`` that says why not."""
    if not data:
        raise IntakeError("empty", "the file is empty (0 bytes)")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):  # classic and BigTIFF
        return "tiff"
    if data[128:132] == b"DICM":  # before PDF: an Encapsulated PDF's %PDF- sits in its first kB
        return "dicom"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heif"
    # "BM" alone is two bytes any text may start with: a BMP's DIB header size follows at 14
    if data.startswith(b"BM") and (len(data) < 18 or int.from_bytes(data[14:18], "little") in _BMP_DIB_SIZES):
        return "bmp"
    if b"%PDF-" in data[:1024]:  # the PDF spec tolerates junk before the header
        return "pdf"
    raise IntakeError(
        "unsupported_format",
        f"unrecognised file signature ({len(data)} bytes): expected PNG, JPEG, TIFF, BMP, GIF, "
        "WebP, HEIC/HEIF, PDF or DICOM Part 10 (with its 128-byte preamble and 'DICM')",
    )
