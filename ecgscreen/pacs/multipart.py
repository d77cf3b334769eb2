"""DICOM objects over DICOMweb: the ``multipart/related; type="application/dicom"`` body.

One encoder and one decoder, next to each other. The gateway's ``/report`` answers with
:func:`encode` (the STOW-RS request body, so a client forwards it unchanged); the router and
the tests read such a body back with :func:`decode`.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable, Sequence

import pydicom
from pydicom.dataset import Dataset

__all__ = ["MEDIA_TYPE", "part10", "encode", "encode_datasets", "decode", "decode_datasets"]

MEDIA_TYPE = "application/dicom"
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def part10(ds: Dataset) -> bytes:
    """``ds`` as a DICOM Part 10 file (preamble, file meta, data set)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encode(parts: Sequence[bytes]) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/related message of DICOM Part 10 files."""
    if not parts:
        raise ValueError("a DICOM multipart message needs at least one part")
    boundary = uuid.uuid4().hex
    while any(boundary.encode() in part for part in parts):  # practically never
        boundary = uuid.uuid4().hex
    chunks = []
    for part in parts:
        chunks += [f"--{boundary}\r\nContent-Type: {MEDIA_TYPE}\r\n\r\n".encode(), part, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="{MEDIA_TYPE}"; boundary={boundary}'


def encode_datasets(datasets: Iterable[Dataset]) -> tuple[bytes, str]:
    return encode([part10(ds) for ds in datasets])


def decode(body: bytes, content_type: str) -> list[bytes]:
    """The payloads of a multipart/related body, in order. ``ValueError`` when it is none."""
    if not content_type.lower().startswith("multipart/related"):
        raise ValueError(f"expected a multipart/related body, got {content_type!r}")
    match = _BOUNDARY.search(content_type)
    if not match:
        raise ValueError("the multipart Content-Type has no boundary")
    delimiter = b"--" + match.group(1).encode()
    sections = (b"\r\n" + body).split(b"\r\n" + delimiter)
    parts = []
    for section in sections[1:]:
        if section.startswith(b"--"):  # the close delimiter
            break
        headers, separator, payload = section.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart part has no header/body separator")
        parts.append(payload)
    if not parts:
        raise ValueError("the multipart body holds no part")
    return parts


def decode_datasets(body: bytes, content_type: str) -> list[Dataset]:
    return [pydicom.dcmread(io.BytesIO(part)) for part in decode(body, content_type)]
