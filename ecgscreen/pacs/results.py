"""The AI results as DICOM: a TID 1500 Measurement Report (Comprehensive 3D SR) and the
heatmap overlays as Secondary Capture images, following IHE AI Results (AIR).

Pure functions of (the source dataset or None, the ``/predict`` answer, the model card, the
heatmap pictures): the gateway's ``/report`` calls :func:`build_results` with exactly what
``/predict`` answers, so the SR cannot disagree with the JSON API.

* Both objects join the source's study with its patient module (a DICOM input), or a new
  study with empty patient attributes (any other input; the caller may give a patient ID and
  an accession number).
* UIDs are derived from what the results are about (the source instance, or the file's
  digest), the model (its device UID) and the answer itself: the same ECG run twice through
  the same model gives the same SOP instances, so a PACS keeps one copy, never two.
* Everything is marked as research output: series descriptions start "CAUTION: Not for
  diagnostic use", Content Qualification is RESEARCH, the pictures say it in their title.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    QualitativeEvaluation,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as dicom_codes
from pydicom.uid import generate_uid

from ..card import ModelCard
from ..contract import TASK_NAMES, TASKS
from ..dicom_codes import PATIENT_STUDY_OPTIONAL, copy_patient_study
from . import codes

__all__ = [
    "MANUFACTURER",
    "CAUTION",
    "SR_SERIES_NUMBER",
    "SC_SERIES_NUMBER",
    "ModelIdentity",
    "Heatmap",
    "NewStudy",
    "build_results",
    "is_own_result",
]

MANUFACTURER = "ecgscreen"  # the router recognises its own results by it
CAUTION = "CAUTION: Not for diagnostic use"
SR_SERIES_DESCRIPTION = f"{CAUTION}. ecgscreen AI results"
SC_SERIES_DESCRIPTION = f"{CAUTION}. ecgscreen heatmaps"
SR_SERIES_NUMBER = 9901  # high numbers keep AI series after the acquired ones in viewers
SC_SERIES_NUMBER = 9902


@dataclass(frozen=True)
class ModelIdentity:
    """Who made the results: the model card's name and version, and a Device UID that
    changes whenever the model's weights (or the fusion head's) change."""

    name: str
    version: str
    device_uid: str
    software_version: str

    @classmethod
    def from_card(cls, card: ModelCard, software_version: str = "") -> ModelIdentity:
        fusion = card.fusion_onnx.sha256 if card.fusion_onnx else ""
        device_uid = generate_uid(
            entropy_srcs=["ecgscreen-device", card.name, card.version, card.onnx.sha256, fusion]
        )
        return cls(card.name, card.version, device_uid, software_version or "ecgscreen")


@dataclass(frozen=True)
class Heatmap:
    """The explain overlay of one task, as shown by ``/explain``: (H, W, 3) uint8 RGB."""

    task: str
    image: np.ndarray


@dataclass(frozen=True)
class NewStudy:
    """Where results of a non-DICOM input go: a new study, identified by the file's digest."""

    file_digest: str  # hex sha256 of the file
    patient_id: str = ""
    accession_number: str = ""


def is_own_result(manufacturer: str | None, series_description: str | None) -> bool:
    """True for an object this module wrote (the router must not analyse its own output)."""
    return (manufacturer or "") == MANUFACTURER and (series_description or "").startswith(CAUTION)


def _uid(seed: str, what: str) -> str:
    return generate_uid(entropy_srcs=[seed, what])


def _header(source: Dataset) -> Dataset:
    """The source's identity, patient and study attributes (not its bulk data)."""
    header = Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if keyword not in source:
            raise ValueError(f"the source DICOM object has no {keyword}")
        setattr(header, keyword, source[keyword].value)
    return copy_patient_study(source, header)


def _unambiguous_names(header: Dataset) -> dict[str, object]:
    """Give one-component person names ("Anonymous") their optional trailing caret, which
    DICOM reads as the same name; return the originals. highdicom warns about such names and
    the warning quotes them: a log must never carry a patient's name."""
    originals = {}
    for keyword in ("PatientName", "ReferringPhysicianName"):
        value = str(header.get(keyword, "") or "")
        originals[keyword] = header.get(keyword, "")
        if value and "^" not in value and "=" not in value:
            setattr(header, keyword, value + "^")
    return originals


def _new_study_header(study: NewStudy, seed: str, now: datetime.datetime) -> Dataset:
    header = Dataset()
    header.StudyInstanceUID = _uid(seed, "study")
    header.PatientName = ""
    header.PatientID = study.patient_id
    header.PatientBirthDate = ""
    header.PatientSex = ""
    header.StudyDate = now.strftime("%Y%m%d")
    header.StudyTime = now.strftime("%H%M%S")
    header.ReferringPhysicianName = ""
    header.StudyID = ""
    header.AccessionNumber = study.accession_number
    return header


def _seed(identity: str, model: ModelIdentity, prediction: Mapping, tasks: Sequence[str]) -> str:
    """What the results are about and what they say: equal seeds, equal UIDs."""
    answer = {task: (prediction.get(task) or {}).get("probability") for task in tasks}
    answer["fused"] = prediction.get("fused")
    blob = json.dumps([identity, model.device_uid, list(tasks), answer], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _contributing_equipment(model: ModelIdentity, now: datetime.datetime) -> Dataset:
    """The IHE AIR item: the algorithm that produced the object."""
    item = Dataset()
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = model.name
    item.SoftwareVersions = [model.software_version, f"model {model.version}"]
    item.PurposeOfReferenceCodeSequence = [codes.PROCESSING_ALGORITHM]
    item.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
    item.ContributionDescription = "AI inference: myocardial scar and LVEF < 50 % from a 12-lead ECG"
    return item


def _mark(ds: Dataset, model: ModelIdentity, now: datetime.datetime) -> Dataset:
    if "ContributingEquipmentSequence" not in ds:
        ds.ContributingEquipmentSequence = []
    ds.ContributingEquipmentSequence.append(_contributing_equipment(model, now))
    return ds


def _reading_notes(prediction: Mapping) -> list[str]:
    """What a reader of the SR must know about how the ECG was read: the reading judge's
    quality, the leads left blank, an input unlike the training data (each <= 64 chars)."""
    notes = []
    reading = prediction.get("preprocessing") or {}
    if reading.get("quality") is not None:
        notes.append(f"reading_quality={float(reading['quality']):.2f}")
    blank = [lead for lead, v in (reading.get("leads") or {}).items() if v.get("status") != "read"]
    if blank:
        notes.append("leads_left_blank=" + ",".join(blank))
    novelty = prediction.get("novelty") or {}
    if novelty.get("unusual"):
        notes.append(f"unlike_training_data=distance {float(novelty['distance']):.1f}")
    return notes


def _group(
    task: str,
    result: Mapping,
    model: ModelIdentity,
    seed: str,
    fused: Mapping | None,
    notes: Sequence[str] = (),
):
    """TID 1501: one task's probability, call and risk level, with the algorithm (TID 4019)
    and, among its parameters, the ``notes`` on how the ECG was read."""
    inputs = "image + clinical features" if fused is not None else "image"
    parameters = [f"threshold={float(result['threshold']):.6g}", f"inputs={inputs}", *notes]
    if fused is not None and fused.get("imputed"):
        parameters.append("imputed=" + ",".join(fused["imputed"]))
    algorithm = AlgorithmIdentification(
        name=model.name, version=model.version, parameters=parameters, manufacturer=MANUFACTURER
    )
    label = f"{task} ({'fused' if fused is not None else 'image'})"
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=_uid(seed, label), identifier=label),
        finding_type=codes.FINDING[task],
        algorithm_id=algorithm,
        measurements=[
            Measurement(
                name=codes.PROBABILITY[task],
                value=float(result["probability"]["positive"]),
                unit=codes.UNIT_ONE,
            )
        ],
        qualitative_evaluations=[
            QualitativeEvaluation(codes.CALL, codes.PRESENT if int(result["prediction"]) else codes.ABSENT),
            QualitativeEvaluation(codes.RISK, codes.RISK_LEVEL[result["risk_level"]]),
        ],
    )


def _heatmap_image(
    heatmap: Heatmap, index: int, header: Dataset, seed: str, model: ModelIdentity, now: datetime.datetime
) -> hd.sc.SCImage:
    image = np.ascontiguousarray(heatmap.image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a heatmap must be an (H, W, 3) RGB image, got shape {image.shape}")
    sc = hd.sc.SCImage(
        pixel_array=image,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=header.StudyInstanceUID,
        series_instance_uid=_uid(seed, "sc-series"),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=_uid(seed, f"sc-{heatmap.task}"),
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        patient_id=header.PatientID,
        patient_name=header.PatientName,
        patient_birth_date=header.PatientBirthDate,
        patient_sex=header.PatientSex,
        accession_number=header.AccessionNumber,
        study_id=header.StudyID,
        study_date=header.StudyDate,
        study_time=header.StudyTime,
        referring_physician_name=header.ReferringPhysicianName,
        # highdicom insists on an orientation for PATIENT images; a picture of a printout
        # has none, so the Type 2C attribute is emptied below.
        patient_orientation=("L", "F"),
        series_description=SC_SERIES_DESCRIPTION,
        manufacturer_model_name=model.name,
        software_versions=model.software_version,
        content_date=now.date(),
        content_time=now.time().replace(microsecond=0),
    )
    sc.PatientOrientation = ""
    sc.BodyPartExamined = "HEART"  # an unpaired organ: no Laterality needed
    sc.ConversionType = "SYN"  # a synthetic image: rendered, not acquired
    sc.BurnedInAnnotation = "YES"
    sc.RecognizableVisualFeatures = "NO"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = f"Grad-CAM++ heatmap of the {TASK_NAMES[heatmap.task]} output over the ECG"
    sc.ImageComments = f"{CAUTION}. Research use only."
    for keyword in PATIENT_STUDY_OPTIONAL:
        if keyword in header and keyword not in sc:
            setattr(sc, keyword, header[keyword].value)
    return _mark(sc, model, now)


def build_results(
    source: Dataset | None,
    prediction: Mapping,
    model: ModelIdentity,
    heatmaps: Sequence[Heatmap],
    *,
    tasks: Sequence[str] = TASKS,
    new_study: NewStudy | None = None,
    now: datetime.datetime | None = None,
) -> list[Dataset]:
    """The SR, then one heatmap SC per entry of ``heatmaps``, ready to store.

    ``prediction`` is the ``/predict`` answer (``{task: {"prediction", "probability",
    "risk_level", "threshold"}, "fused": {...} | None}``); ``tasks`` are the tasks reported.
    ``source`` is the DICOM object the ECG came in, or None with ``new_study`` given.
    """
    if (source is None) == (new_study is None):
        raise ValueError("give either the source DICOM object or a NewStudy, not both or neither")
    unknown = [task for task in tasks if task not in codes.FINDING]
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {sorted(codes.FINDING)}, got {list(tasks)}")
    now = now or datetime.datetime.now()
    identity = source.SOPInstanceUID if source is not None else new_study.file_digest
    seed = _seed(identity, model, prediction, tasks)
    header = _header(source) if source is not None else _new_study_header(new_study, seed, now)
    names = _unambiguous_names(header)

    images = [_heatmap_image(h, i, header, seed, model, now) for i, h in enumerate(heatmaps)]
    fused = prediction.get("fused")
    # A task the model answers only through its fusion head (a clinical model of the study)
    # is null in the image-only answer: it is reported once, fused.
    notes = _reading_notes(prediction)
    groups = [
        _group(task, prediction[task], model, seed, None, notes) for task in tasks if prediction.get(task)
    ]
    if fused:
        groups += [_group(task, fused[task], model, seed, fused, notes) for task in tasks if fused.get(task)]
    if not groups:
        raise ValueError("the answer holds no result for the tasks asked")
    observer = ObserverContext(
        observer_type=dicom_codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=model.device_uid, name="ecgscreen", manufacturer_name=MANUFACTURER, model_name=model.name
        ),
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=codes.PROCEDURE_REPORTED,
        imaging_measurements=groups,
    )
    # The evidence: the source ECG, then the heatmaps (for a non-DICOM input, only they are
    # DICOM; the first evidence item also lends the SR its patient and study).
    evidence = ([header] if source is not None else []) + images
    sr = Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=_uid(seed, "sr-series"),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=_uid(seed, "sr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SR_SERIES_DESCRIPTION,
        manufacturer_model_name=model.name,
        software_versions=model.software_version,
        content_qualification="RESEARCH",
        coding_schemes=[CodingSchemeIdentificationItem(designator=codes.SCHEME, name=codes.SCHEME_NAME)],
    )
    results = [_mark(sr, model, now), *images]
    for ds in results:  # the source's names exactly as they were
        for keyword, value in names.items():
            setattr(ds, keyword, value)
    return results
