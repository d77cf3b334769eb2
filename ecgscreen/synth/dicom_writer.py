"""DICOM objects an ECG arrives in from a PACS, written by the generator.

Three IODs: Encapsulated PDF (the cart's report), Secondary Capture (a scanned printout) and
12-lead ECG Waveform Storage (the raw signal, written by the project's one waveform writer,
``ecgscreen.imaging.waveform_dicom``). Their codes live in ``ecgscreen.dicom_codes``; reading
is ``ecgscreen.imaging.dicom_reader``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from ..dicom_codes import SOP_12_LEAD_ECG, SOP_ENCAPSULATED_PDF, SOP_SECONDARY_CAPTURE
from ..imaging.waveform_dicom import add_waveform, coded

__all__ = [
    "DicomPatient",
    "encapsulated_pdf",
    "secondary_capture",
    "ecg_waveform",
]


@dataclass(frozen=True)
class DicomPatient:
    """Identifying fields written into every object (synthetic here, real in a PACS)."""

    name: str
    patient_id: str
    birth_date: str  # YYYYMMDD
    sex: str  # F / M
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    uid_seed: str  # makes the UIDs deterministic


def _dataset(sop_class: str, modality: str, patient: DicomPatient) -> Dataset:
    uid = {k: generate_uid(entropy_srcs=[patient.uid_seed, k]) for k in ("study", "series", "sop")}
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid["sop"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid["sop"]
    ds.StudyInstanceUID = uid["study"]
    ds.SeriesInstanceUID = uid["series"]
    ds.Modality = modality
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.ContentTime = patient.study_time
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "ecgscreen synthetic cart"
    return ds


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encapsulated_pdf(pdf: bytes, patient: DicomPatient) -> bytes:
    """Encapsulated PDF Storage: the cart's PDF report inside a DICOM object."""
    ds = _dataset(SOP_ENCAPSULATED_PDF, "ECG", patient)
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "12-lead ECG report"
    ds.ConceptNameCodeSequence = Sequence([coded("11524-6", "LN", "EKG study")])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return _encode(ds)


def secondary_capture(image: Image.Image, patient: DicomPatient, jpeg_quality: int | None = None) -> bytes:
    """Secondary Capture Image Storage: a digitised paper printout, 8-bit colour, or 8/16-bit
    greyscale (``MONOCHROME2``) for an ``L`` / ``I;16`` image.

    Uncompressed by default; with ``jpeg_quality`` the pixels are JPEG Baseline
    (YBR_FULL_422, or 8-bit grey), as many scanning workstations store them.
    """
    # Filed as an ECG (modality ECG), as a scanned ECG printout is when a PACS is to route it
    # to ECG readers or an AI node (ecgscreen.pacs.selection picks up SC with modality ECG).
    ds = _dataset(SOP_SECONDARY_CAPTURE, "ECG", patient)
    ds.ConversionType = "DF"  # digitised film / paper
    ds.BurnedInAnnotation = "YES"
    if image.mode in ("L", "I;16"):
        return _encode(_grey_pixels(ds, image, jpeg_quality))
    rgb = image.convert("RGB")
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.Columns, ds.Rows = rgb.size
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if jpeg_quality is None:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = np.asarray(rgb, dtype=np.uint8).tobytes()
    else:
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=jpeg_quality, subsampling="4:2:2")
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
    return _encode(ds)


def _grey_pixels(ds: Dataset, image: Image.Image, jpeg_quality: int | None) -> Dataset:
    bits = 16 if image.mode == "I;16" else 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Columns, ds.Rows = image.size
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if jpeg_quality is None or bits == 16:
        ds.PixelData = (
            np.asarray(image, dtype=np.uint16 if bits == 16 else np.uint8).astype(f"<u{bits // 8}").tobytes()
        )
        return ds
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=jpeg_quality)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    return ds


def ecg_waveform(signal_mv: np.ndarray, sample_rate: float, patient: DicomPatient) -> bytes:
    """12-lead ECG Waveform Storage: the raw signal, one multiplex group of 12 channels."""
    ds = _dataset(SOP_12_LEAD_ECG, "ECG", patient)
    ds.AcquisitionDateTime = patient.study_date + patient.study_time
    return _encode(add_waveform(ds, signal_mv, sample_rate, "ORIGINAL"))
