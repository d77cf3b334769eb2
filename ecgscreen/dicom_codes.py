"""DICOM facts shared by the writer (``synth.dicom_writer``), the reader
(``imaging.dicom_reader``) and the PACS side: SOP classes and the SCP-ECG lead codes."""

from __future__ import annotations

__all__ = ["SOP_ENCAPSULATED_PDF", "SOP_SECONDARY_CAPTURE", "SOP_12_LEAD_ECG", "LEAD_CODES"]

SOP_ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SOP_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SOP_12_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"

# SCP-ECG lead codes (coding scheme SCPECG), as in DICOM PS3.16 CID 3001.
LEAD_CODES: dict[str, tuple[str, str]] = {
    "I": ("5.6.3-9-1", "Lead I (Einthoven)"),
    "II": ("5.6.3-9-2", "Lead II"),
    "III": ("5.6.3-9-61", "Lead III"),
    "aVR": ("5.6.3-9-62", "Lead aVR"),
    "aVL": ("5.6.3-9-63", "Lead aVL"),
    "aVF": ("5.6.3-9-64", "Lead aVF"),
    "V1": ("5.6.3-9-3", "Lead V1"),
    "V2": ("5.6.3-9-4", "Lead V2"),
    "V3": ("5.6.3-9-5", "Lead V3"),
    "V4": ("5.6.3-9-6", "Lead V4"),
    "V5": ("5.6.3-9-7", "Lead V5"),
    "V6": ("5.6.3-9-8", "Lead V6"),
}
