"""The study's model folders (``tests/fixtures/mtecg``, written by its own code through
``scripts/make_mtecg_fixtures.py``) and its forward as an oracle, for the import and serving
tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

from ecgscreen.contract import CLINICAL_FEATURES

FIXTURES = Path(__file__).parent / "fixtures" / "mtecg"
VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
DEFAULTS = dict(zip(CLINICAL_FEATURES, (62, 0, 0, 1, 0, 1), strict=True))  # --clinical-defaults
# Clinical rows in our contract (age in years, the rest 0/1), CLINICAL_FEATURES order.
CLINICAL = np.array(
    [[62, 1, 0, 1, 0, 1], [45, 0, 1, 0, 1, 0], [88, 1, 1, 1, 1, 1], [30, 0, 0, 0, 0, 0]], np.float32
)
TOLERANCE = 1e-5


def oracle_record(variant: str) -> dict:
    return json.loads((FIXTURES / f"{variant}.oracle.json").read_text())


def is_clinical(variant: str) -> bool:
    return "numerical" in " ".join(oracle_record(variant)["oracle"]["inputs"])


def canonical_images() -> np.ndarray:
    """``(4, S, S)`` uint8, what ``ecg_preprocess`` hands the network: the committed canonical
    image and three random grey pictures."""
    canonical = np.asarray(Image.open(FIXTURES / "canonical.png").convert("L"))
    noise = np.random.default_rng(0).integers(0, 256, (3, *canonical.shape), dtype=np.uint8)
    return np.concatenate([canonical[None], noise])


def as_rgb(canonical: np.ndarray) -> np.ndarray:
    """``(B, S, S)`` uint8 -> ``(B, S, S, 3)`` in [0, 1]: the study's RGB input of the same pictures."""
    return np.repeat(canonical[..., None].astype(np.float32) / 255.0, 3, axis=3)


def normalised(rgb: np.ndarray, mean, std) -> np.ndarray:
    return ((rgb - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(0, 3, 1, 2).copy()


def study_forward(variant: str, rgb: np.ndarray, clinical: np.ndarray | None, transform: dict) -> np.ndarray:
    """The oracle on the study's own input encoding: ``transform.json``'s normalisation, age / 100
    as a ``(B, 1, 1)`` float, the five categories as ``(B, 1, 5)`` integers."""
    oracle = torch.jit.load(str(FIXTURES / f"{variant}.oracle.pt"))
    image = torch.from_numpy(normalised(rgb, transform["mean"], transform["std"]))
    with torch.no_grad():
        if clinical is None:
            return oracle(image).numpy()
        numerical = torch.from_numpy(clinical[:, :1] / 100.0).reshape(-1, 1, 1)
        categorical = torch.from_numpy(clinical[:, 1:]).long().reshape(-1, 1, 5)
        return oracle(image, numerical, categorical).numpy()


def onnx_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
