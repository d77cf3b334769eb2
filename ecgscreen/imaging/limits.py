"""Resource limits for intake: what one request may cost, whatever it contains."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class Limits:
    """Refuse, rather than try, anything beyond these.

    A 300-dpi A4 scan is 8.7 megapixels and a cart's PDF report one or two pages, so the
    defaults leave room for real archives while a decompression bomb or a 500-page PDF is
    refused before it costs memory or time.
    """

    max_bytes: int = 25 * 1024 * 1024
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


DEFAULT_LIMITS = Limits()
