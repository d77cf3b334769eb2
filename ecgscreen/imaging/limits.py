"""Resource limits for intake: what one request may cost, whatever it contains.

The largest file is the one limit the gateway shares: ``ECGSCREEN_MAX_BODY_MB`` (default 25)
sets both the gateway's body limit and intake's ``max_bytes`` (``max_bytes_from_env``), so the
two cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Limits", "DEFAULT_LIMITS", "MAX_BYTES", "MAX_BODY_ENV", "max_bytes_from_env"]

MAX_BYTES = 25 * 1024 * 1024
MAX_BODY_ENV = "ECGSCREEN_MAX_BODY_MB"


def max_bytes_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """The largest ECG file accepted, in bytes: ``ECGSCREEN_MAX_BODY_MB`` or 25 MiB."""
    value = environ.get(MAX_BODY_ENV)
    if not value:
        return MAX_BYTES
    try:
        megabytes = float(value)
    except ValueError:
        raise ValueError(f"{MAX_BODY_ENV}={value!r} is not a number") from None
    if megabytes <= 0:
        raise ValueError(f"{MAX_BODY_ENV}={value!r} must be positive")
    return int(megabytes * 1024 * 1024)


@dataclass(frozen=True)
class Limits:
    """Refuse, rather than try, anything beyond these.

    A 300-dpi A4 scan is 8.7 megapixels and a cart's PDF report one or two pages, so the
    defaults leave room for real archives while a decompression bomb or a 500-page PDF is
    refused before it costs memory or time.
    """

    max_bytes: int = MAX_BYTES
    max_pixels: int = 40_000_000
    max_pdf_pages: int = 8
    max_pdf_objects: int = 20_000  # drawing objects on the ECG page
    max_pdf_inflated_bytes: int = 64 * 1024 * 1024  # all streams, decompressed
    max_dicom_frames: int = 16
    min_waveform_seconds: float = 2.5

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"limit {name} must be positive, got {value!r}")


DEFAULT_LIMITS = Limits(max_bytes=max_bytes_from_env())
