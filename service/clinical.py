"""Clinical features (the study's six) and their fusion with the image embedding.

The fusion head is the small ONNX exported with the model (``fusion.onnx``); it takes the
512-d image embedding Triton returns and the six features in the study's order. A missing
feature is replaced by its training-set mean stored in the model card, and the response
says which ones were.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["ClinicalFeatures", "FusionHead", "parse_clinical", "FEATURES"]

FEATURES = ("age", "female_gender", "dm", "ht", "smoke", "dlp")


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
        raise ValueError("clinical must be a JSON object with any of the keys " + ", ".join(FEATURES))
    try:
        return ClinicalFeatures.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'clinical'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid clinical features: {problems}") from None


class FusionHead:
    """``fusion.onnx`` plus the imputation means from the model card."""

    def __init__(self, model_dir: Path, card: dict) -> None:
        clinical = card.get("clinical") or {}
        self.available = bool(clinical) and (model_dir / clinical.get("fusion", "fusion.onnx")).exists()
        if not self.available:
            return
        if tuple(clinical["features"]) != FEATURES:
            raise ValueError(
                f"model card lists clinical features {clinical['features']}, expected {FEATURES}"
            )
        self.means = {name: float(clinical["imputation_means"][name]) for name in FEATURES}
        self.thresholds = clinical.get("fused_thresholds") or card.get("thresholds") or {}
        self.averages = clinical.get("fused_population_average") or {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_dir / clinical.get("fusion", "fusion.onnx")),
            options,
            providers=["CPUExecutionProvider"],
        )

    def __call__(
        self, embedding: np.ndarray, features: ClinicalFeatures
    ) -> tuple[dict[str, float], list[str]]:
        """Fused positive-class probability per task, and the names of imputed features."""
        given = features.model_dump()
        imputed = [name for name in FEATURES if given[name] is None]
        row = [float(given[name]) if given[name] is not None else self.means[name] for name in FEATURES]
        outputs = self.session.run(None, {"embedding": embedding.reshape(1, -1).astype(np.float32),
                                          "clinical": np.asarray([row], dtype=np.float32)})  # fmt: skip
        names = [o.name for o in self.session.get_outputs()]
        fused = {
            name.removesuffix("_probability"): float(value.ravel()[0])
            for name, value in zip(names, outputs, strict=True)
        }
        return fused, imputed
