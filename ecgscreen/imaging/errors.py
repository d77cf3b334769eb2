"""Typed refusals: every way an ECG file can be unusable, with a reason a user can act on.

``reason`` is a stable machine code (metrics label, API error field); ``status`` is the HTTP
status the gateway answers with; the message says what was wrong and what to do. Messages
never quote file contents: the header of an ECG names the patient.

A refusal crosses Triton's boundary as the error message of its request,
``intake:<reason>:<http status>: <detail>`` (clients calling Triton directly read it too).
``to_wire`` writes it in the ``ecg_preprocess`` model and ``from_wire`` reads it in the gateway:
one format, encoded and decoded here.
"""

from __future__ import annotations

import re

__all__ = ["IntakeError", "REASONS", "INTERNAL", "to_wire", "from_wire"]

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
    # Rows were found, but not in a layout this reader knows (what it saw is in the detail).
    "unsupported_layout": 422,
    # The reading judge (imaging.judge): what is on the page is not a complete, readable ECG.
    "not_an_ecg": 422,
    "incomplete_ecg": 422,
    "no_signal": 422,
    "unreadable": 422,
}
# Not the file's fault: intake itself failed on it (a bug). It travels like a refusal so the
# gateway tells it apart from a failure of Triton.
INTERNAL = "internal"
_STATUS = {**REASONS, INTERNAL: 500}
_WIRE = re.compile(r"intake:([a-z_]+):(\d{3}): (.*)", re.DOTALL)


class IntakeError(ValueError):
    """An ECG file that cannot be turned into a model input."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in _STATUS:
            raise ValueError(f"unknown intake refusal reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def status(self) -> int:
        return _STATUS[self.reason]

    def to_dict(self) -> dict[str, object]:
        return {"error": self.reason, "detail": self.message, "status": self.status}


def to_wire(error: IntakeError) -> str:
    """The error message that carries ``error`` through Triton."""
    return f"intake:{error.reason}:{error.status}: {error.message}"


def from_wire(message: str) -> IntakeError | None:
    """The refusal a Triton error message carries (Triton may add its own prefix), or ``None``
    when it carries none, or a reason this version does not know."""
    match = _WIRE.search(message or "")
    if match is None or match.group(1) not in _STATUS:
        return None
    return IntakeError(match.group(1), match.group(3).strip())
