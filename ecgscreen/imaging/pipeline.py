"""``preprocess``: any ECG file's bytes in, the canonical model input and an info record out.

One code path for training, evaluation and serving (Triton's ``ecg_preprocess`` imports
this). The info record is what people debug their archives with: source format, layout,
rotation, grid colour, gain, a quality score and warnings. It never contains text read from
the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..contract import CANONICAL_SIZE, PAGE_MM, PAPER_SPEED_MM_S
from ..leads import LEADS
from . import canonical
from .deskew import estimate_rotation, rotate
from .dicom_reader import read_dicom
from .digitize import read_envelopes
from .errors import IntakeError
from .images import WORKING_PX_PER_MM, decode_image
from .ink import separate_ink
from .layout import find_layout
from .limits import DEFAULT_LIMITS, Limits
from .pdf_render import render_pdf
from .sniff import sniff

__all__ = ["Preprocessed", "preprocess"]

PDF_PX_PER_MM = 3.5  # vector pages render sharp: slightly below the scan working resolution


@dataclass
class Preprocessed:
    canonical: np.ndarray  # (S, S) uint8, white background
    info: dict = field(default_factory=dict)

    @property
    def tensor(self) -> np.ndarray:
        """(3, S, S) float32, ImageNet-normalised: the model input."""
        return canonical.to_model_input(self.canonical)


def _quality(envelopes: dict[str, canonical.Envelope], calibrated: bool, regularity: float) -> float:
    """0..1: share of the 12 canonical panels' columns that hold trace, discounted when the
    calibration pulse was not found or the rows are unevenly spaced."""
    found = sum(np.isfinite(env.low).sum() for env in envelopes.values())
    columns = len(LEADS) * next(iter(envelopes.values())).low.size if envelopes else 1
    score = found / columns
    return float(round(score * (1.0 if calibrated else 0.9) * regularity, 3))


def _from_printout(image: np.ndarray, info: dict, size: int) -> np.ndarray:
    """Canonical image of a printed page (RGB or grey pixels)."""
    scale = min(1.0, WORKING_PX_PER_MM * PAGE_MM[0] / max(image.shape[:2]))
    ink = separate_ink(image, scale)
    angle, confidence = estimate_rotation(ink.mask)
    info["grid"] = ink.grid
    return _from_trace_mask(rotate(ink.mask, angle), angle, confidence, info, size)


def _from_vector_pdf(image: np.ndarray, info: dict, size: int) -> np.ndarray:
    """Canonical image of a PDF page rendered without its grid and text: the pixels are
    already just the trace, straight, on white."""
    info["grid"] = "removed (vector)"
    return _from_trace_mask(image < 128, 0.0, 10.0, info, size)


def _from_pdf(data: bytes, info: dict, size: int, limits: Limits) -> np.ndarray:
    rendered = render_pdf(data, limits, PDF_PX_PER_MM)
    if rendered.vector:
        return _from_vector_pdf(rendered.image, info, size)
    return _from_printout(rendered.image, info, size)


def _from_trace_mask(mask: np.ndarray, angle: float, confidence: float, info: dict, size: int) -> np.ndarray:
    page = find_layout(mask)
    envelopes = read_envelopes(mask, page, size // 2)
    missing = [lead for lead in LEADS if lead not in envelopes]
    info.update(
        layout=page.layout,
        rotation_deg=round(angle, 2),
        gain_mm_per_mv=round(page.gain_mm_per_mv, 2),
        paper_speed_mm_s=PAPER_SPEED_MM_S,
        quality=_quality(envelopes, not page.warnings, page.regularity),
    )
    info["warnings"] += page.warnings
    if missing:
        info["warnings"].append(f"leads not found: {', '.join(missing)}")
    if confidence < 1.3 and abs(angle) > 0.5:
        info["warnings"].append("rotation estimate uncertain")
    return canonical.paint(envelopes, size)


def _from_waveform(waveform, info: dict, size: int) -> np.ndarray:
    info.update(
        layout="waveform", rotation_deg=0.0, grid="none", quality=1.0, sample_rate_hz=waveform.sample_rate
    )
    if waveform.derived:
        info["warnings"].append(f"derived from leads I and II: {', '.join(waveform.derived)}")
    duration = waveform.signal.shape[1] / waveform.sample_rate
    if duration < 10.0:
        info["warnings"].append(f"recording lasts {duration:.1f} s; panels after that stay blank")
        info["quality"] = round(duration / 10.0, 3)
    return canonical.signal_to_canonical(waveform.signal, waveform.sample_rate, size, waveform.leads)


def preprocess(data: bytes, size: int = CANONICAL_SIZE, limits: Limits = DEFAULT_LIMITS) -> Preprocessed:
    """The canonical model input of one ECG file, or an ``IntakeError`` that says why not."""
    start = time.perf_counter()
    if len(data) > limits.max_bytes:
        raise IntakeError(
            "too_large",
            f"the file is {len(data) / 2**20:.1f} MiB; the limit is {limits.max_bytes / 2**20:.0f} MiB",
        )
    fmt = sniff(data)
    info: dict = {"source_format": fmt, "warnings": []}
    if fmt == "dicom":
        content = read_dicom(data, limits)
        info["source_format"] = f"dicom-{content.kind}"
        if content.kind == "waveform":
            image = _from_waveform(content.waveform, info, size)
        elif content.kind == "pdf":
            image = _from_pdf(content.pdf, info, size, limits)
        else:
            image = _from_printout(content.image, info, size)
    elif fmt == "pdf":
        image = _from_pdf(data, info, size, limits)
    else:
        image = _from_printout(decode_image(data, fmt, limits), info, size)
    info["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return Preprocessed(image, info)
