"""Unwrap a DICOM object from a PACS into what it carries: a PDF, an image, or a waveform."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import pydicom
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, JPEGBaseline8Bit, JPEGExtended12Bit

from ..dicom_codes import LEAD_CODES, SOP_12_LEAD_ECG, SOP_ENCAPSULATED_PDF, SOP_SECONDARY_CAPTURE
from ..leads import LEADS
from .errors import IntakeError
from .images import to_rgb_array
from .limits import Limits

__all__ = ["Waveform", "DicomContent", "read_dicom", "WAVEFORM_SOPS", "IMAGE_SOPS"]

WAVEFORM_SOPS = {
    SOP_12_LEAD_ECG,
    "1.2.840.10008.5.1.4.1.1.9.1.2",  # General ECG Waveform Storage
    "1.2.840.10008.5.1.4.1.1.9.1.3",  # Ambulatory ECG Waveform Storage
}
IMAGE_SOPS = {
    SOP_SECONDARY_CAPTURE,
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image Storage
}
_MDC_LEADS = {"2:1": "I", "2:2": "II", "2:61": "III", "2:62": "aVR", "2:63": "aVL", "2:64": "aVF"}
_MDC_LEADS |= {f"2:{i + 3}": f"V{i + 1}" for i in range(6)}
_SCPECG_LEADS = {code: lead for lead, (code, _) in LEAD_CODES.items()}
_LEAD_WORD = re.compile(r"\b(aVR|aVL|aVF|III|II|I|V[1-6])\b", re.IGNORECASE)
_UNIT_TO_MV = {"uv": 1e-3, "mv": 1.0, "v": 1e3}
_MAX_WAVEFORM_SAMPLES = 2_000_000
_JPEG_SYNTAXES = {JPEGBaseline8Bit, JPEGExtended12Bit}


@dataclass(frozen=True)
class Waveform:
    signal: np.ndarray  # (n_leads, N) mV
    leads: tuple[str, ...]
    sample_rate: float
    derived: tuple[str, ...]  # limb leads computed from I and II


@dataclass(frozen=True)
class DicomContent:
    kind: str  # "pdf" | "image" | "waveform"
    pdf: bytes | None = None
    image: np.ndarray | None = None  # (H, W, 3) uint8
    waveform: Waveform | None = None
    sop_class: str = ""


def _sop_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else f"unknown SOP class {uid}"


def _lead_of(channel: pydicom.Dataset) -> str | None:
    source = channel.get("ChannelSourceSequence")
    if not source:
        return None
    code = source[0]
    value = str(code.get("CodeValue", ""))
    if value in _SCPECG_LEADS:
        return _SCPECG_LEADS[value]
    if value in _MDC_LEADS:
        return _MDC_LEADS[value]
    meaning = str(code.get("CodeMeaning", "")).replace("Lead", " ")
    match = _LEAD_WORD.search(meaning)
    if not match:
        return None
    word = match.group(1)
    return next(lead for lead in LEADS if lead.lower() == word.lower())


def _unit_scale(channel: pydicom.Dataset) -> float:
    units = channel.get("ChannelSensitivityUnitsSequence")
    unit = str(units[0].get("CodeValue", "uV")).lower() if units else "uv"
    if unit not in _UNIT_TO_MV:
        raise IntakeError("waveform_invalid", f"waveform channel unit {unit!r} is not a voltage")
    return _UNIT_TO_MV[unit]


def _read_waveform(ds: pydicom.Dataset, limits: Limits) -> Waveform:
    groups = ds.get("WaveformSequence")
    if not groups:
        raise IntakeError("dicom_no_ecg", f"the {_sop_name(ds.SOPClassUID)} object has no waveform data")
    # The rhythm group (the full recording), not the median beat: the one with most samples.
    index = max(range(len(groups)), key=lambda i: int(groups[i].get("NumberOfWaveformSamples", 0)))
    group = groups[index]
    samples = int(group.get("NumberOfWaveformSamples", 0))
    channels = list(group.get("ChannelDefinitionSequence", []))
    rate = float(group.get("SamplingFrequency", 0) or 0)
    if samples * max(len(channels), 1) > _MAX_WAVEFORM_SAMPLES or rate <= 0:
        raise IntakeError(
            "waveform_invalid", f"waveform group has {samples} samples at {rate:g} Hz: not a 12-lead ECG"
        )
    if samples / rate < limits.min_waveform_seconds:
        raise IntakeError(
            "waveform_invalid",
            f"the waveform lasts {samples / rate:.1f} s; at least {limits.min_waveform_seconds:g} s needed",
        )
    try:
        data = ds.waveform_array(index)  # (samples, channels), sensitivity and baseline applied
    except Exception as exc:  # pydicom raises several types on malformed waveform data
        raise IntakeError(
            "waveform_invalid", f"the waveform data cannot be decoded ({type(exc).__name__})"
        ) from None
    found: dict[str, np.ndarray] = {}
    for c, channel in enumerate(channels):
        lead = _lead_of(channel)
        if lead and lead not in found:
            found[lead] = data[:, c].astype(np.float64) * _unit_scale(channel)
    derived = []
    if "I" in found and "II" in found:  # 8-lead storage: derive the other limb leads (Einthoven)
        i, ii = found["I"], found["II"]
        for lead, values in (
            ("III", ii - i),
            ("aVR", -(i + ii) / 2),
            ("aVL", i - ii / 2),
            ("aVF", ii - i / 2),
        ):
            if lead not in found:
                found[lead] = values
                derived.append(lead)
    if len(found) < 6:
        raise IntakeError(
            "waveform_invalid", f"the waveform has {len(found)} recognisable ECG leads; at least 6 are needed"
        )
    leads = tuple(lead for lead in LEADS if lead in found)
    return Waveform(np.stack([found[lead] for lead in leads]), leads, rate, tuple(derived))


def _read_pixels(ds: pydicom.Dataset, limits: Limits) -> np.ndarray:
    if "PixelData" not in ds:
        raise IntakeError("dicom_no_ecg", f"the {_sop_name(ds.SOPClassUID)} object has no pixel data")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols > limits.max_pixels or frames > limits.max_dicom_frames:
        raise IntakeError(
            "too_many_pixels", f"the DICOM image is {cols} x {rows} x {frames} frames; over the limit"
        )
    try:
        if ds.file_meta.TransferSyntaxUID in _JPEG_SYNTAXES and frames == 1:
            # Pillow decodes (and colour-converts) baseline JPEG in C, several times faster
            # than pydicom's numpy YBR conversion.
            frame = next(generate_frames(ds.PixelData, number_of_frames=1))
            return to_rgb_array(Image.open(io.BytesIO(frame)))
        pixels = ds.pixel_array  # YBR is converted to RGB
    except Exception as exc:  # truncated or undecodable pixel data
        reason = "truncated" if "length" in str(exc).lower() or "expected" in str(exc).lower() else "corrupt"
        raise IntakeError(reason, f"the DICOM pixel data cannot be decoded ({type(exc).__name__})") from None
    if frames > 1:
        pixels = pixels[0]
    if pixels.dtype != np.uint8:
        lo, hi = np.percentile(pixels, [0.5, 99.5])
        pixels = np.clip((pixels - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        pixels = 255 - pixels
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def read_dicom(data: bytes, limits: Limits) -> DicomContent:
    """What a DICOM Part 10 file carries, or an ``IntakeError`` naming why it is no ECG."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        raise IntakeError("corrupt", "the DICOM file header is invalid") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise IntakeError(
            "truncated", f"the DICOM file cannot be read to its end ({type(exc).__name__})"
        ) from None
    sop = str(ds.get("SOPClassUID", ""))
    if sop == SOP_ENCAPSULATED_PDF:
        if "EncapsulatedDocument" not in ds:
            raise IntakeError("dicom_no_ecg", "the Encapsulated PDF object holds no document")
        pdf = bytes(ds.EncapsulatedDocument)
        length = int(ds.get("EncapsulatedDocumentLength", len(pdf)) or len(pdf))
        return DicomContent("pdf", pdf=pdf[:length], sop_class=sop)
    if sop in WAVEFORM_SOPS:
        return DicomContent("waveform", waveform=_read_waveform(ds, limits), sop_class=sop)
    if sop in IMAGE_SOPS:
        return DicomContent("image", image=_read_pixels(ds, limits), sop_class=sop)
    raise IntakeError(
        "dicom_wrong_sop",
        f"{_sop_name(sop) if sop else 'a DICOM object without SOP class'} is not an ECG object; expected "
        "12-lead ECG waveform, Encapsulated PDF or Secondary Capture",
    )
