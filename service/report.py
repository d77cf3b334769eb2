"""``POST /report``: the ``/predict`` answer and the ``/explain`` pictures as DICOM.

The endpoint computes the answer exactly as ``/predict`` does and renders, per task, exactly
the picture ``/explain`` returns; this module turns both into the AI results objects
(``ecgscreen.pacs.results``: a TID 1500 SR and one heatmap Secondary Capture per task) and
the STOW-RS body that carries them (``multipart/related; type="application/dicom"``).
A DICOM input lends its study and patient; any other input gets a new study, identified only
by what the caller sends in ``patient_id`` and ``accession``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence

import pydicom

from ecgscreen.pacs.multipart import encode_datasets
from ecgscreen.pacs.results import Heatmap, ModelIdentity, NewStudy, build_results

__all__ = ["parse_tasks", "check_identifiers", "report_body"]

_MAX_ID_LENGTH = 64  # LO (patient ID) is 64 characters; an accession number (SH) 16


def parse_tasks(value: str | None, tasks: Sequence[str]) -> tuple[str, ...]:
    """The ``task`` field: comma-separated tasks, default all; ``ValueError`` naming the bad one."""
    if value is None or not value.strip():
        return tuple(tasks)
    given = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in given if t not in tasks]
    if unknown or len(set(given)) != len(given):
        raise ValueError(f"task must be a comma-separated subset of {', '.join(tasks)}, got {value!r}")
    return tuple(t for t in tasks if t in given)


def check_identifiers(fmt: str, patient_id: str | None, accession: str | None) -> None:
    """``patient_id`` / ``accession`` belong to non-DICOM input: a DICOM file brings its own."""
    if fmt == "dicom" and (patient_id or accession):
        raise ValueError("patient_id and accession are for non-DICOM files; a DICOM file brings its own")
    if patient_id and len(patient_id) > _MAX_ID_LENGTH:
        raise ValueError(f"patient_id is longer than {_MAX_ID_LENGTH} characters")
    if accession and len(accession) > 16:
        raise ValueError("accession is longer than 16 characters")


def report_body(
    data: bytes,
    fmt: str,
    answer: Mapping,
    heatmaps: Sequence[Heatmap],
    model: ModelIdentity,
    tasks: Sequence[str],
    patient_id: str | None = None,
    accession: str | None = None,
) -> tuple[bytes, str]:
    """(body, Content-Type) of the STOW-RS request holding the SR and the heatmaps."""
    if fmt == "dicom":
        source = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        objects = build_results(source, answer, model, heatmaps, tasks=tasks)
    else:
        study = NewStudy(hashlib.sha256(data).hexdigest(), patient_id or "", accession or "")
        objects = build_results(None, answer, model, heatmaps, tasks=tasks, new_study=study)
    return encode_datasets(objects)
