"""DICOM facts shared by the writers (``synth.dicom_writer``, ``imaging.waveform_dicom``), the
reader (``imaging.dicom_reader``) and the PACS side: SOP classes, the SCP-ECG lead codes, and
which patient and study attributes an object derived from an ECG copies from its source."""

from __future__ import annotations

from pydicom.dataset import Dataset

__all__ = [
    "SOP_ENCAPSULATED_PDF",
    "SOP_SECONDARY_CAPTURE",
    "SOP_12_LEAD_ECG",
    "LEAD_CODES",
    "PATIENT_STUDY_TYPE2",
    "PATIENT_STUDY_OPTIONAL",
    "copy_patient_study",
]

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

# Patient and study attributes an object derived from an ECG (the AI results, a digitised
# waveform) copies from its source DICOM object, so it joins the same patient and study. The
# Type 2 ones must be present even if empty; the optional ones are copied when the source has
# them (SpecificCharacterSet with them: a name in another script needs it to be read back).
PATIENT_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
PATIENT_STUDY_OPTIONAL = (
    "IssuerOfPatientID",
    "OtherPatientIDsSequence",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "StudyDescription",
    "SpecificCharacterSet",
)


def copy_patient_study(source: Dataset, target: Dataset) -> Dataset:
    """Give ``target`` the patient and study attributes of ``source`` (and its Study Instance
    UID, when it has one); return ``target``."""
    if "StudyInstanceUID" in source:
        target.StudyInstanceUID = source.StudyInstanceUID
    for keyword in PATIENT_STUDY_TYPE2:
        setattr(target, keyword, source.get(keyword, "") or "")
    for keyword in PATIENT_STUDY_OPTIONAL:
        if keyword in source:
            setattr(target, keyword, source[keyword].value)
    return target
