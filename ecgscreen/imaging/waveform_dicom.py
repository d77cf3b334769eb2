"""The 12-lead signal as a DICOM 12-lead ECG Waveform Storage object, and back.

One writer for both kinds of waveform object the project makes: the generator's raw
recordings (``synth.dicom_writer``, ``WaveformOriginality`` ORIGINAL) and the signals
``ecgscreen digitize`` exports (:func:`digitised_waveform`, DERIVED). Both are one multiplex
group of 12 channels (SCP-ECG lead codes), 16-bit signed samples of
``WAVEFORM_SENSITIVITY_UV`` microvolts.

A digitised lead is NaN where it was not printed (a 3x4 printout shows each lead for 2.5 s)
or where the trace was lost; DICOM samples are integers, so those samples are stored as 0 (a
viewer draws the baseline) and the object says which samples hold signal, in its Waveform
Annotation Sequence, per channel (``ReferencedWaveformChannels`` = group 1, channel c):
- ``PRINTED_SPAN``: a SEGMENT, the lead's printed time span (``EcgSignal.spans``);
- ``DIGITISED_SAMPLES``: a SEGMENT or MULTISEGMENT, the runs of samples that hold a value.
``Waveform Padding Value`` is not used for this: 0 is also a valid sample, so declaring it as
padding would hide real samples from readers that honour it. ``dicom_reader`` reads the
values (zeros included); :func:`read_digitised` also reads the annotations and gives the
NaNs back.
"""

from __future__ import annotations

import datetime
import hashlib
import io
from importlib import metadata

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..contract import SIGNAL_RATE_HZ
from ..dicom_codes import LEAD_CODES, SOP_12_LEAD_ECG, copy_patient_study
from ..leads import LEADS
from .dicom_reader import read_dicom
from .limits import DEFAULT_LIMITS, Limits
from .signal import EcgSignal

__all__ = [
    "WAVEFORM_SENSITIVITY_UV",
    "PRINTED_SPAN",
    "DIGITISED_SAMPLES",
    "DIGITISED_SERIES_NUMBER",
    "coded",
    "add_waveform",
    "digitised_waveform",
    "read_digitised",
]

WAVEFORM_SENSITIVITY_UV = 2.5  # one stored unit, in microvolts: +-81.9 mV fits in 16 bits
PRINTED_SPAN = "printed span"
DIGITISED_SAMPLES = "digitised samples (others stored as 0)"
DIGITISED_SERIES_NUMBER = 9903  # after the acquired series, next to the AI results (9901, 9902)
# Below this share of its printed span followed, a lead's channel is flagged QUESTIONABLE.
QUESTIONABLE_CONFIDENCE = 0.5

# What the source of a digitised waveform was, named from ``read_ecg``'s source format, and
# why the new object references it (Waveform Identification: Referenced Instance Sequence).
_SOURCE_NAMES = {"waveform": "a waveform", "pdf": "a PDF", "image": "an image"}
_PURPOSE = {
    "image": ("121322", "DCM", "Source image for image processing operation"),  # CID 7202
    "pdf": ("128225", "DCM", "Source report"),  # CID 7013: a non-image source instance
    "waveform": ("128226", "DCM", "Source raw data"),  # CID 7013
}


def coded(value: str, scheme: str, meaning: str, version: str | None = None) -> Dataset:
    """One item of a code sequence."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    if version:
        item.CodingSchemeVersion = version
    item.CodeMeaning = meaning
    return item


def _channel(
    lead: str, status: list[str], derivation: str | None, filters: tuple[str, str] | None
) -> Dataset:
    code, meaning = LEAD_CODES[lead]
    channel = Dataset()
    channel.ChannelLabel = lead
    if status:
        channel.ChannelStatus = status
    channel.ChannelSourceSequence = Sequence([coded(code, "SCPECG", meaning, "1.3")])
    if derivation:
        channel.ChannelDerivationDescription = derivation
    channel.ChannelSensitivity = f"{WAVEFORM_SENSITIVITY_UV:g}"
    channel.ChannelSensitivityUnitsSequence = Sequence([coded("uV", "UCUM", "microvolt", "1.4")])
    channel.ChannelSensitivityCorrectionFactor = "1"
    channel.ChannelBaseline = "0"
    channel.ChannelSampleSkew = "0"
    channel.WaveformBitsStored = 16
    if filters:
        channel.FilterLowFrequency, channel.FilterHighFrequency = filters
    return channel


def add_waveform(
    ds: Dataset,
    signal_mv: np.ndarray,
    sample_rate: float,
    originality: str = "ORIGINAL",
    status: dict[str, list[str]] | None = None,
    derivation: str | None = None,
    filters: tuple[str, str] | None = ("0.05", "150"),
) -> Dataset:
    """Make ``ds`` (patient, study, series and equipment already set) a 12-lead ECG Waveform
    object holding ``signal_mv`` ((12, N) mV in ``LEADS`` order; NaN is stored as 0):
    SOP class, Waveform Identification, Waveform and Acquisition Context modules.

    ``status``: lead -> Channel Status values; ``derivation``: each channel's Channel
    Derivation Description; ``filters``: the (low, high) filter frequencies in Hz, if known.
    """
    if signal_mv.ndim != 2 or signal_mv.shape[0] != len(LEADS):
        raise ValueError(f"expected 12 leads, got an array of shape {signal_mv.shape}")
    ds.SOPClassUID = SOP_12_LEAD_ECG
    ds.Modality = "ECG"
    if "AcquisitionDateTime" not in ds:
        ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    ds.AcquisitionContextSequence = Sequence([])
    status = status or {}
    channels = [_channel(lead, status.get(lead, []), derivation, filters) for lead in LEADS]
    stored = np.round(np.nan_to_num(signal_mv, nan=0.0) * 1000.0 / WAVEFORM_SENSITIVITY_UV)
    group = Dataset()
    # No Multiplex Group Time Offset: it belongs to objects whose acquisition time is
    # synchronised with other objects' (dciodvfy flags it otherwise).
    group.WaveformOriginality = originality
    group.NumberOfWaveformChannels = len(LEADS)
    group.NumberOfWaveformSamples = signal_mv.shape[1]
    group.SamplingFrequency = f"{sample_rate:g}"
    group.MultiplexGroupLabel = "RHYTHM"
    group.ChannelDefinitionSequence = Sequence(channels)
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformData = np.clip(stored, -32768, 32767).astype("<i2").T.tobytes()  # sample-major
    ds.WaveformSequence = Sequence([group])
    return ds


def _source_header(source: bytes, source_format: str) -> Dataset | None:
    """The header of a DICOM source ``read_ecg`` accepted, or ``None`` for any other file."""
    if not source_format.startswith("dicom"):
        return None
    return pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)


def _kind(source_format: str) -> str:
    if source_format.endswith("waveform"):
        return "waveform"
    return "pdf" if source_format.endswith("pdf") else "image"


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the runs of True in ``valid``."""
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _annotation(channel: int, text: str, runs: list[tuple[int, int]]) -> Dataset:
    item = Dataset()
    item.UnformattedTextValue = text
    item.ReferencedWaveformChannels = [1, channel]
    item.TemporalRangeType = "SEGMENT" if len(runs) == 1 else "MULTISEGMENT"
    # Sample positions count from 1 and include both ends: [start, stop) is start + 1 .. stop.
    item.ReferencedSamplePositions = [p for start, stop in runs for p in (start + 1, stop)]
    return item


def _annotations(signal: EcgSignal) -> list[Dataset]:
    n = signal.values.shape[1]
    items = []
    for c, lead in enumerate(LEADS):
        if lead in signal.spans:
            t0, t1 = signal.spans[lead]
            start, stop = int(np.ceil(t0 * signal.sample_rate)), min(int(np.ceil(t1 * signal.sample_rate)), n)
            if stop > start:
                items.append(_annotation(c + 1, PRINTED_SPAN, [(start, stop)]))
        runs = _runs(np.isfinite(signal.values[c]))
        if runs:
            items.append(_annotation(c + 1, DIGITISED_SAMPLES, runs))
    return items


def _status(signal: EcgSignal) -> dict[str, list[str]]:
    """Channel Status per lead: INVALID where nothing was read, QUESTIONABLE where little of
    the printed span was, UNCALIBRATED where the gain was assumed (no pulse, no gain text)."""
    status = {}
    for lead in LEADS:
        confidence = signal.confidence.get(lead, 0.0)
        if confidence == 0.0 or not np.isfinite(signal.lead(lead)).any():
            values = ["INVALID"]
        else:
            values = ["QUESTIONABLE"] if confidence < QUESTIONABLE_CONFIDENCE else []
            if signal.gain_source == "standard":
                values.append("UNCALIBRATED")
        status[lead] = values or ["OK"]
    return status


def _software() -> str:
    try:
        return f"ecgscreen {metadata.version('ecgscreen')}"
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "ecgscreen"


def digitised_waveform(
    signal: EcgSignal, source_format: str, source: bytes, now: datetime.datetime | None = None
) -> Dataset:
    """The 12-lead ECG Waveform object of a signal ``read_ecg`` made from the file ``source``.

    A DICOM source lends its patient and study (the object joins that study) and is
    referenced; any other source gets a new study with empty patient attributes. Series and
    SOP Instance UIDs are new, derived from the source's bytes and the signal: the same file
    digitised to the same signal gives the same UIDs, so a PACS keeps one copy. Marked as
    derived: WaveformOriginality DERIVED, Content Qualification RESEARCH, and a series
    description that says ecgscreen digitised it.
    """
    now = now or datetime.datetime.now()
    kind = _kind(source_format)
    file_digest = hashlib.sha256(source).hexdigest()
    seed = f"{file_digest}-{hashlib.sha256(signal.values.tobytes()).hexdigest()}"
    sop_uid = generate_uid(entropy_srcs=[seed, "sop"])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SOP_12_LEAD_ECG
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header = _source_header(source, source_format)
    copy_patient_study(header if header is not None else Dataset(), ds)  # no source: all empty
    if header is None:
        ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if "StudyInstanceUID" not in ds:  # a new study (or a source without its UID)
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[file_digest, "study"])
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[seed, "series"])
    ds.SeriesNumber = DIGITISED_SERIES_NUMBER
    ds.InstanceNumber = 1
    ds.SeriesDescription = f"ECG digitised by ecgscreen from {_SOURCE_NAMES[kind]} (research use)"
    ds.ContentQualification = "RESEARCH"
    ds.Manufacturer = "ecgscreen"
    ds.ManufacturerModelName = "ecgscreen digitize"
    ds.SoftwareVersions = _software()
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    # When the ECG was recorded: the source says so, or (an image or a PDF) nothing does and
    # the digitisation is the acquisition of this waveform.
    acquired = header.get("AcquisitionDateTime") if header is not None else None
    ds.AcquisitionDateTime = acquired or ds.ContentDate + ds.ContentTime
    if header is not None and "SOPInstanceUID" in header:
        reference = Dataset()
        reference.ReferencedSOPClassUID = header.SOPClassUID
        reference.ReferencedSOPInstanceUID = header.SOPInstanceUID
        reference.PurposeOfReferenceCodeSequence = Sequence([coded(*_PURPOSE[kind])])
        ds.ReferencedInstanceSequence = Sequence([reference])
    derivation = f"digitised from {_SOURCE_NAMES[kind]} by ecgscreen"
    add_waveform(ds, signal.values, signal.sample_rate, "DERIVED", _status(signal), derivation, filters=None)
    ds.WaveformAnnotationSequence = Sequence(_annotations(signal))
    return ds


def _sample_runs(item: Dataset) -> list[tuple[int, int]]:
    positions = [int(p) for p in item.get("ReferencedSamplePositions", [])]
    return [(positions[i] - 1, positions[i + 1]) for i in range(0, len(positions) - 1, 2)]


def read_digitised(data: bytes, limits: Limits = DEFAULT_LIMITS) -> EcgSignal:
    """The signal a :func:`digitised_waveform` object holds, NaN where it holds none, with each
    lead's printed span and confidence (the share of that span that holds values). Values are
    read by the project's reader (``dicom_reader``); an object without these annotations
    reads as fully digitised."""
    waveform = read_dicom(data, limits).waveform
    if waveform is None:
        raise ValueError("not a waveform DICOM object")
    signal = EcgSignal.from_leads(
        dict(zip(waveform.leads, waveform.signal, strict=True)), waveform.sample_rate
    )
    ds = pydicom.dcmread(io.BytesIO(data))
    items = list(ds.get("WaveformAnnotationSequence", []))
    # Sample positions count the stored samples: they fit the signal only at its own rate.
    ours = any(str(item.get("UnformattedTextValue", "")) == DIGITISED_SAMPLES for item in items)
    if not ours or waveform.sample_rate != SIGNAL_RATE_HZ:
        return signal
    n = signal.values.shape[1]
    valid = np.zeros(signal.values.shape, dtype=bool)
    spans: dict[str, tuple[float, float]] = {}
    for item in items:
        group, channel = (int(v) for v in item.get("ReferencedWaveformChannels", [0, 0])[:2])
        if group != 1 or not 1 <= channel <= len(LEADS):
            continue
        lead, text = LEADS[channel - 1], str(item.get("UnformattedTextValue", ""))
        for start, stop in _sample_runs(item):
            if text == DIGITISED_SAMPLES:
                valid[channel - 1, max(start, 0) : min(stop, n)] = True
            elif text == PRINTED_SPAN:
                spans[lead] = (start / SIGNAL_RATE_HZ, stop / SIGNAL_RATE_HZ)
    signal.values[~valid] = np.nan
    signal.spans = spans
    signal.confidence = {}
    for c, lead in enumerate(LEADS):
        start, stop = (int(round(t * SIGNAL_RATE_HZ)) for t in spans.get(lead, (0.0, 0.0)))
        inside = valid[c, start:stop]
        signal.confidence[lead] = round(float(inside.mean()), 3) if inside.size else 0.0
    return signal
