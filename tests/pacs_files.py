"""ECG files as a PACS holds them, and answers shaped like the gateway's, for the PACS tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from corpus import good_ecg
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = ["ecg_files", "corrupt_waveform", "ct_image", "task_answer", "heatmap_picture"]


def ecg_files() -> dict[str, bytes]:
    """The ECG objects of the PACS tests: pydicom's real 12-lead waveform and the generator's
    three DICOM kinds."""
    return {
        "pydicom-waveform_ecg": Path(get_testdata_file("waveform_ecg.dcm")).read_bytes(),
        "generator-waveform": good_ecg("dcm-waveform", index=5),
        "generator-pdf": good_ecg("dcm-pdf", index=3),
        "generator-sc": good_ecg("dcm-sc", index=4),
    }


def corrupt_waveform(index: int = 6) -> bytes:
    """A 12-lead ECG object whose waveform data lost its second half: a PACS stores it, intake
    cannot decode it. Each ``index`` is another patient, study and object."""
    ds = pydicom.dcmread(io.BytesIO(good_ecg("dcm-waveform", index=index)))
    group = ds.WaveformSequence[0]
    group.WaveformData = group.WaveformData[: len(group.WaveformData) // 2]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_image() -> bytes:
    """A small CT slice, complete enough for a PACS to file it."""
    uid = {k: generate_uid(entropy_srcs=["pacs-test-ct", k]) for k in ("study", "series", "sop")}
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    meta.MediaStorageSOPInstanceUID = uid["sop"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, uid["sop"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid["study"], uid["series"]
    ds.Modality, ds.PatientName, ds.PatientID, ds.StudyDate = "CT", "TEST^CT", "CT-1", "20260101"
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((64, 64), dtype=np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def task_answer(probability: float, threshold: float) -> dict:
    """One task as ``/predict`` answers it."""
    level = "low" if probability < 0.3 else "medium" if probability < 0.7 else "high"
    return {
        "prediction": int(probability >= threshold),
        "probability": {"negative": round(1 - probability, 6), "positive": round(probability, 6)},
        "risk_level": level,
        "threshold": threshold,
        "average": 0.3,
    }


def heatmap_picture(seed: int = 0, size: tuple[int, int] = (120, 100)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
