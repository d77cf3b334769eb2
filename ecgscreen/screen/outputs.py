"""What a screened file leaves besides its row: its CSV fields, heatmap PNGs
(``--explain-dir``) and DICOM results (``--dicom-dir``: the TID 1500 SR and one heatmap SC
per task, as the gateway's ``/report`` builds them).

Files are named after the row's key: ``<dir>/<key>.<task>.png``, ``<dir>/<key>.sr.dcm`` and
``<dir>/<key>.<task>.sc.dcm``, so an archive's folder structure is kept.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from ..card import ModelCard
from ..contract import TASKS, risk_level
from ..explain import explain_picture
from ..imaging.errors import IntakeError
from .client import Answer

__all__ = ["row_fields", "refusal_fields", "answer_of", "write_heatmaps", "write_reading", "write_dicom"]


def row_fields(answer: Answer, card: ModelCard) -> dict:
    """An answered file's CSV fields: per task its probability, call and risk; intake's info."""
    fields: dict = {"outcome": "ok", "status": 200}
    for task, p in answer.probability.items():
        fields[f"{task}_probability"] = f"{p:.6f}"
        fields[f"{task}_call"] = int(p >= card.threshold(task))
        fields[f"{task}_risk"] = risk_level(p)
    info = answer.info
    fields.update(source_format=info.get("source_format", ""), layout=info.get("layout", ""),
                  quality=info.get("quality", ""), warnings="; ".join(info.get("warnings", [])))  # fmt: skip
    return fields


def refusal_fields(error: IntakeError) -> dict:
    """A refused file's CSV fields (``error`` when intake itself failed on it: a bug)."""
    return {"outcome": "refused" if error.status < 500 else "error", "status": error.status,
            "reason": error.reason, "detail": error.message}  # fmt: skip


def answer_of(answer: Answer, card: ModelCard) -> dict:
    """The ``/predict`` answer's image-only part (what ``pacs.results.build_results`` reads)."""
    body: dict = {task: None for task in TASKS}
    for task, p in answer.probability.items():
        threshold = card.threshold(task)
        body[task] = {"prediction": int(p >= threshold), "risk_level": risk_level(p),
                      "probability": {"negative": round(1 - p, 6), "positive": round(p, 6)},
                      "threshold": round(threshold, 6), "average": card.average(task)}  # fmt: skip
    body["fused"] = None
    return body


def _target(folder: Path, key: str, suffix: str) -> Path:
    path = Path(folder) / f"{key.lstrip('/')}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_heatmaps(folder: Path, key: str, answer: Answer, tasks: tuple[str, ...]) -> None:
    for task in tasks:
        picture = explain_picture(answer.canonical, answer.cam, task, answer.probability[task], tasks)
        picture.save(_target(folder, key, f".{task}.png"), format="PNG", compress_level=1)


def write_reading(folder: Path, key: str, data: bytes) -> None:
    """The reading picture of one file (what intake read, over the page), answered or refused.
    Intake runs here once more, on this machine: Triton's answer carries no page."""
    from ..imaging.pipeline import read_page
    from ..imaging.reading_picture import reading_png

    try:
        reading = read_page(data)
    except IntakeError:
        return  # nothing was read: no picture (the CSV row says why)
    _target(folder, key, ".reading.png").write_bytes(reading_png(reading))


def write_dicom(folder: Path, key: str, data: bytes, answer: Answer, card: ModelCard,
                tasks: tuple[str, ...]) -> None:  # fmt: skip
    import pydicom

    from ..imaging.sniff import sniff
    from ..pacs.results import Heatmap, ModelIdentity, NewStudy, build_results

    heatmaps = [
        Heatmap(t, np.asarray(explain_picture(answer.canonical, answer.cam, t, answer.probability[t], tasks)))
        for t in tasks
    ]
    identity = ModelIdentity.from_card(card)
    if sniff(data) == "dicom":
        source = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        objects = build_results(source, answer_of(answer, card), identity, heatmaps, tasks=tasks)
    else:
        study = NewStudy(hashlib.sha256(data).hexdigest(), "", "")
        objects = build_results(
            None, answer_of(answer, card), identity, heatmaps, tasks=tasks, new_study=study
        )
    sr, *scs = objects
    sr.save_as(_target(folder, key, ".sr.dcm"), enforce_file_format=True)
    for task, sc in zip(tasks, scs, strict=True):
        sc.save_as(_target(folder, key, f".{task}.sc.dcm"), enforce_file_format=True)
