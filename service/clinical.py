"""Clinical features (the study's six) and their fusion with the image embedding.

The fusion head is the small ONNX exported with the model (``fusion.onnx``); it takes the
image embedding Triton returns and the six features in the study's order. A missing feature
is replaced by its training-set mean stored in the model card (``ModelCard.impute``), and the
response says which ones were.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecgscreen.card import ModelCard
from ecgscreen.contract import CLINICAL_FEATURES, TASKS, probability_output

__all__ = ["ClinicalFeatures", "FusionHead", "parse_clinical"]


class ClinicalFeatures(BaseModel):
    """Any subset of the study's clinical features; booleans accept true/false or 1/0."""

    model_config = ConfigDict(extra="forbid")

    age: float | None = Field(None, ge=18, le=110, description="age in years (adults)")
    female_gender: bool | None = Field(None, description="female sex")
    dm: bool | None = Field(None, description="diabetes mellitus")
    ht: bool | None = Field(None, description="hypertension")
    smoke: bool | None = Field(None, description="current or former smoker")
    dlp: bool | None = Field(None, description="dyslipidaemia")


def parse_clinical(value: str | dict | None) -> ClinicalFeatures | None:
    """The ``clinical`` form field (a JSON object, or the dict BentoML already decoded from
    it), or None when absent or empty. Raises ``ValueError`` naming each bad key."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    raw = value
    if isinstance(value, str):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"clinical is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(raw, dict):
        raise ValueError(
            "clinical must be a JSON object with any of the keys " + ", ".join(CLINICAL_FEATURES)
        )
    try:
        return ClinicalFeatures.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'clinical'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid clinical features: {problems}") from None


class FusionHead:
    """``fusion.onnx``, fed the features the model card's means complete."""

    def __init__(self, model_dir: Path, card: ModelCard) -> None:
        self.card = card
        path = model_dir / card.clinical.fusion if card.clinical else None
        self.available = path is not None and path.exists()
        if not self.available:
            return
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(
        self, embedding: np.ndarray, features: ClinicalFeatures
    ) -> tuple[dict[str, float], list[str]]:
        """Fused positive-class probability per task, and the names of imputed features."""
        given = features.model_dump()
        imputed = [name for name in CLINICAL_FEATURES if given[name] is None]
        row = [np.nan if given[name] is None else float(given[name]) for name in CLINICAL_FEATURES]
        outputs = self.session.run(None, {"embedding": embedding.reshape(1, -1).astype(np.float32),
                                          "clinical": self.card.impute(np.asarray([row]))})  # fmt: skip
        task_of = {probability_output(task): task for task in TASKS}
        names = [o.name for o in self.session.get_outputs()]
        fused = {task_of[name]: float(value.ravel()[0]) for name, value in zip(names, outputs, strict=True)}
        return fused, imputed
