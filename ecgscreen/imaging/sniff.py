"""Detect a file's format from its first bytes, never from its name or declared type."""

from __future__ import annotations

from .errors import IntakeError

__all__ = ["sniff", "FORMATS"]

FORMATS = ("png", "jpeg", "tiff", "pdf", "dicom")


def sniff(data: bytes) -> str:
    """One of ``FORMATS`` for ``data``, or an ``IntakeError`` that says why not."""
    if not data:
        raise IntakeError("empty", "the file is empty (0 bytes)")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if data[128:132] == b"DICM":  # before PDF: an Encapsulated PDF's %PDF- sits in its first kB
        return "dicom"
    if b"%PDF-" in data[:1024]:  # the PDF spec tolerates junk before the header
        return "pdf"
    raise IntakeError(
        "unsupported_format",
        f"unrecognised file signature ({len(data)} bytes): expected PNG, JPEG, TIFF, PDF or "
        "DICOM Part 10 (with its 128-byte preamble and 'DICM')",
    )
