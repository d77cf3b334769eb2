"""Which DICOM objects the router takes on: ECGs, never its own results, nothing else.

An ECG object is a resting ECG waveform (12-lead or general ECG waveform storage), or a
picture of one with modality ECG: the cart's Encapsulated PDF, a Secondary Capture or a VL
photograph of the printout. Ambulatory (Holter) recordings are not resting ECGs. The SR and
heatmap images the router stores back are recognised by their manufacturer and series
description (``results.is_own_result``) and ignored, so they never trigger it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import UID

from ..dicom_codes import SOP_ENCAPSULATED_PDF
from ..imaging.dicom_reader import IMAGE_SOPS, WAVEFORM_SOPS
from .results import is_own_result

__all__ = ["Verdict", "classify", "ECG_WAVEFORM_SOPS", "ECG_PICTURE_SOPS", "ECG", "OWN", "NOT_ECG"]

ECG, OWN, NOT_ECG = "ecg", "own_result", "not_an_ecg"
_AMBULATORY_ECG = "1.2.840.10008.5.1.4.1.1.9.1.3"  # Holter: intake reads it, the router leaves it
ECG_WAVEFORM_SOPS = frozenset(WAVEFORM_SOPS - {_AMBULATORY_ECG})  # 12-lead and general ECG
ECG_PICTURE_SOPS = frozenset({SOP_ENCAPSULATED_PDF, *IMAGE_SOPS})  # PDF, SC, VL photo


@dataclass(frozen=True)
class Verdict:
    kind: str  # ECG | OWN | NOT_ECG
    detail: str = ""

    @property
    def is_ecg(self) -> bool:
        return self.kind == ECG


def _name(sop_class: str) -> str:
    name = UID(sop_class).name if sop_class else ""
    return name if name and name != sop_class else f"SOP class {sop_class or '(none)'}"


def classify(sop_class: str, modality: str, manufacturer: str = "", series_description: str = "") -> Verdict:
    """What the router does with an object, from four attributes a PACS indexes."""
    if is_own_result(manufacturer, series_description):
        return Verdict(OWN)
    if sop_class in ECG_WAVEFORM_SOPS:
        return Verdict(ECG)
    if sop_class in ECG_PICTURE_SOPS and modality == "ECG":
        return Verdict(ECG)
    if sop_class in ECG_PICTURE_SOPS:
        return Verdict(NOT_ECG, f"{_name(sop_class)} with modality {modality or '(none)'}, not ECG")
    return Verdict(NOT_ECG, f"{_name(sop_class)} is not an ECG object")
