"""Typed refusals: every way an ECG file can be unusable, with a reason a user can act on.

``reason`` is a stable machine code (metrics label, API error field); ``status`` is the HTTP
status the gateway answers with; the message says what was wrong and what to do. Messages
never quote file contents: the header of an ECG names the patient.
"""

from __future__ import annotations

__all__ = ["IntakeError", "REASONS"]

# reason -> HTTP status
REASONS: dict[str, int] = {
    "empty": 400,
    "unsupported_format": 415,
    "truncated": 400,
    "corrupt": 400,
    "too_large": 413,
    "too_many_pixels": 413,
    "pdf_encrypted": 422,
    "pdf_too_many_pages": 413,
    "pdf_too_complex": 422,
    "pdf_bomb": 422,
    "pdf_blank": 422,
    "dicom_wrong_sop": 422,
    "dicom_no_ecg": 422,
    "waveform_invalid": 422,
    "no_layout": 422,
}


class IntakeError(ValueError):
    """An ECG file that cannot be turned into a model input."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown intake refusal reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def status(self) -> int:
        return REASONS[self.reason]

    def to_dict(self) -> dict[str, object]:
        return {"error": self.reason, "detail": self.message, "status": self.status}
