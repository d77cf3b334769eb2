"""The 12-lead signal as a DICOM 12-lead ECG Waveform object: values through the project's own
reader within one quantisation step, NaN spans kept in the annotations, patient and study from
a DICOM source, new UIDs, the source referenced, and dciodvfy finds no error."""

from __future__ import annotations

import datetime
import io
from functools import lru_cache

import numpy as np
import pydicom
import pytest
from orthanc_harness import dciodvfy
from pydicom.data import get_testdata_file

from ecgscreen.dicom_codes import SOP_12_LEAD_ECG
from ecgscreen.imaging.pipeline import read_ecg
from ecgscreen.imaging.signal import EcgSignal
from ecgscreen.imaging.waveform_dicom import (
    DIGITISED_SAMPLES,
    WAVEFORM_SENSITIVITY_UV,
    digitised_waveform,
    read_digitised,
)
from ecgscreen.leads import LEADS
from ecgscreen.pacs.multipart import part10
from ecgscreen.synth.generate import encode_record, make_record

STEP_MV = WAVEFORM_SENSITIVITY_UV / 1000.0
TOLERANCE_MV = STEP_MV / 2 + 1e-6  # rounding to the stored integer, plus float32
NOW = datetime.datetime(2026, 5, 4, 13, 14, 15)


@lru_cache(maxsize=1)
def pydicom_ecg() -> bytes:
    return open(get_testdata_file("waveform_ecg.dcm"), "rb").read()


@lru_cache(maxsize=1)
def generated_pdf() -> bytes:
    """A vector PDF of a 3x4 + rhythm printout: each lead printed for 2.5 s, NaN elsewhere."""
    return encode_record(make_record(11, 0, formats=("pdf",), layouts=("3x4+1",)))


def _digitise(data: bytes) -> tuple[EcgSignal, dict, bytes]:
    signal, info = read_ecg(data)
    return signal, info, part10(digitised_waveform(signal, info["source_format"], data, NOW))


@pytest.mark.parametrize("source", ["waveform", "pdf"])
def test_the_project_reader_reads_back_the_values_within_one_quantisation_step(source):
    data = pydicom_ecg() if source == "waveform" else generated_pdf()
    signal, _, written = _digitise(data)
    back, info = read_ecg(written)
    assert info["source_format"] == "dicom-waveform" and back.values.shape == signal.values.shape
    printed = np.isfinite(signal.values)
    assert printed.mean() > (0.99 if source == "waveform" else 0.2)
    assert np.abs(back.values[printed] - signal.values[printed]).max() <= TOLERANCE_MV
    assert np.isnan(back.values[~printed]).all()  # not printed: stored as 0, read back as NaN


def test_read_digitised_gives_back_the_nans_the_spans_and_the_confidence():
    signal, _, written = _digitise(generated_pdf())
    assert (~np.isfinite(signal.values)).any(), "a 3x4 printout leaves most of each lead empty"
    back = read_digitised(written)
    np.testing.assert_array_equal(np.isnan(back.values), np.isnan(signal.values))
    printed = np.isfinite(signal.values)
    assert np.abs(back.values[printed] - signal.values[printed]).max() <= TOLERANCE_MV
    assert back.spans.keys() == signal.spans.keys()
    for lead, span in signal.spans.items():
        assert back.spans[lead] == pytest.approx(span), lead
    assert back.spans["V1"] == (5.0, 7.5) and back.spans["II"] == (0.0, 10.0)
    for lead in LEADS:
        assert back.confidence[lead] == pytest.approx(signal.confidence[lead], abs=1e-3), lead


def test_gaps_inside_a_printed_span_are_kept_as_several_segments():
    values = np.sin(np.arange(5000) / 40.0).astype(np.float32)[None].repeat(12, 0)
    values[:, 1250:] = np.nan  # every lead printed 0 .. 2.5 s
    values[7, 300:350] = np.nan  # V2 lost its trace for 0.1 s
    values[11] = np.nan  # V6 not found
    spans = {lead: (0.0, 2.5) for lead in LEADS if lead != "V6"}
    confidence = {lead: 1.0 for lead in spans} | {"V2": 0.96, "V6": 0.0}
    signal = EcgSignal(values, spans=spans, confidence=confidence, gain_source="standard")
    ds = digitised_waveform(signal, "png", b"a scanned page", NOW)
    runs = {
        tuple(item.ReferencedWaveformChannels): item
        for item in ds.WaveformAnnotationSequence
        if item.UnformattedTextValue == DIGITISED_SAMPLES
    }
    assert runs[(1, 8)].TemporalRangeType == "MULTISEGMENT"
    assert list(runs[(1, 8)].ReferencedSamplePositions) == [1, 300, 351, 1250]
    assert (1, 12) not in runs
    status = {
        c.ChannelLabel: list(np.atleast_1d(c.ChannelStatus))
        for c in ds.WaveformSequence[0].ChannelDefinitionSequence
    }
    assert status["V6"] == ["INVALID"] and status["V2"] == ["UNCALIBRATED"]  # gain assumed: 10 mm/mV
    back = read_digitised(part10(ds))
    np.testing.assert_array_equal(np.isnan(back.values), np.isnan(values))
    assert back.confidence["V2"] == 0.96 and back.confidence["V6"] == 0.0


def test_a_dicom_source_lends_its_patient_and_study_and_is_referenced():
    source = pydicom.dcmread(io.BytesIO(pydicom_ecg()))
    _, _, written = _digitise(pydicom_ecg())
    ds = pydicom.dcmread(io.BytesIO(written))
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName"):  # fmt: skip
        assert ds[keyword].value == source[keyword].value, keyword
    assert ds.PatientID == "642341" and ds.AccessionNumber == "03028041970546"
    assert ds.SOPClassUID == SOP_12_LEAD_ECG
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.AcquisitionDateTime == source.AcquisitionDateTime  # when the ECG was recorded
    reference = ds.ReferencedInstanceSequence[0]
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == source.SOPClassUID
    assert reference.PurposeOfReferenceCodeSequence[0].CodeValue == "128226"  # source raw data
    assert ds.WaveformSequence[0].WaveformOriginality == "DERIVED"
    assert ds.ContentQualification == "RESEARCH" and ds.Manufacturer == "ecgscreen"
    assert "digitised by ecgscreen from a waveform" in ds.SeriesDescription
    assert "research use" in ds.SeriesDescription


def test_any_other_source_starts_a_new_study_with_empty_patient_attributes():
    _, _, written = _digitise(generated_pdf())
    ds = pydicom.dcmread(io.BytesIO(written))
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
        assert keyword in ds and not ds[keyword].value, keyword
    assert ds.StudyDate == "20260504" and ds.StudyTime == "131415"
    assert "ReferencedInstanceSequence" not in ds
    assert "from a PDF" in ds.SeriesDescription
    assert ds.WaveformSequence[0].WaveformOriginality == "DERIVED"


def test_uids_follow_the_file_and_the_signal():
    signal, info = read_ecg(pydicom_ecg())
    first = digitised_waveform(signal, info["source_format"], pydicom_ecg(), NOW)
    again = digitised_waveform(signal, info["source_format"], pydicom_ecg(), NOW)
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (again.SOPInstanceUID, again.SeriesInstanceUID)
    changed = EcgSignal(signal.values * 2, spans=signal.spans, confidence=signal.confidence)
    other = digitised_waveform(changed, info["source_format"], pydicom_ecg(), NOW)
    assert other.SOPInstanceUID != first.SOPInstanceUID and other.SeriesInstanceUID != first.SeriesInstanceUID
    assert other.StudyInstanceUID == first.StudyInstanceUID  # still the source's study
    pdf_a = digitised_waveform(signal, "pdf", b"one PDF", NOW)
    pdf_b = digitised_waveform(signal, "pdf", b"another PDF", NOW)
    assert pdf_a.StudyInstanceUID != pdf_b.StudyInstanceUID


@pytest.mark.slow
def test_dciodvfy_finds_no_error(tmp_path):
    synth = encode_record(make_record(11, 1, formats=("dcm-waveform",)))
    objects = {
        "from-dicom-waveform": _digitise(pydicom_ecg())[2],
        "from-pdf": _digitise(generated_pdf())[2],
        "synth-original": synth,
    }
    for name, data in objects.items():
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(data)
        errors, warnings_ = dciodvfy(path)
        assert not errors, (name, errors)
        # The only warnings: the source's own patient names (a retired form) and, for a new
        # study, the empty patient and study IDs a DICOMDIR would need.
        assert all("Person Name" in w or "DICOMDIR" in w for w in warnings_), (name, warnings_)
