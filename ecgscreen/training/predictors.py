"""Batch prediction from a canonical-image array, with a training checkpoint or the ONNX export.

Both predictors take what the cache holds (``(N, S, S)`` uint8 canonical images) and the
clinical matrix (``(N, 6)``, NaN where missing) and return positive-class probabilities per
task, image-only and fused. The checkpoint's predictor normalises with ``to_model_input`` (as
training does); the exported ONNX takes the canonical images as they are (as Triton hands
them) and normalises inside its graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..card import ModelCard, impute
from ..contract import FUSION_FILE, MODEL_CARD_FILE, MODEL_INPUT, MODEL_NAME, TASKS, probability_output
from ..imaging.canonical import to_model_input
from .calibration import platt_probability
from .checkpoint import RunModel, load_run_model

__all__ = ["Predictions", "TorchPredictor", "OnnxPredictor", "load_predictor", "find_onnx"]


@dataclass
class Predictions:
    """Positive-class probabilities: ``image[task]`` and ``fused[task]`` (``None``: no fusion)."""

    image: dict[str, np.ndarray]
    fused: dict[str, np.ndarray] | None


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _model_input(images: np.ndarray) -> np.ndarray:
    return np.stack([to_model_input(np.asarray(img)) for img in images])


class TorchPredictor:
    """Predict with a ``RunModel`` (a training checkpoint) on ``device``."""

    def __init__(self, run: RunModel, device: str = "cpu", batch_size: int = 32):
        self.run, self.device, self.batch_size = run, torch.device(device), batch_size
        self.model = run.model.to(self.device).eval()
        self.fusion = run.fusion.to(self.device).eval() if run.fusion is not None else None
        self.tasks = self.model.tasks
        self.image_size = int(self.model.config["image_size"])
        self.thresholds: dict[str, float] | None = run.meta.get("thresholds")
        self.fused_thresholds: dict[str, float] | None = run.meta.get("fused_thresholds")
        self.calibration: dict[str, dict[str, list[float]]] = run.meta.get("calibration") or {}
        self.description = f"checkpoint {run.meta.get('path', '(in memory)')}"

    @torch.no_grad()
    def embed(
        self, images: np.ndarray, progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(N, 2T)`` and embeddings ``(N, E)`` of canonical images."""
        logits, embeddings = [], []
        for s in _batches(len(images), self.batch_size):
            x = torch.from_numpy(_model_input(images[s])).to(self.device)
            _, embedding = self.model.forward_embedding(self.model.forward_features(x))
            logits.append(self.model.logits(embedding).cpu())
            embeddings.append(embedding.cpu())
            if progress:
                progress(s.stop - s.start)
        return torch.cat(logits).numpy(), torch.cat(embeddings).numpy()

    @torch.no_grad()
    def predict(
        self, images: np.ndarray, clinical: np.ndarray, progress: Callable[[int], None] | None = None
    ) -> Predictions:
        """Positive-class probabilities, Platt-scaled where the checkpoint carries calibration."""
        logits, embeddings = self.embed(images, progress)
        scale = self.calibration.get("image", {})
        image = {t: _positive(logits[:, 2 * i : 2 * i + 2], scale.get(t)) for i, t in enumerate(self.tasks)}
        fused = None
        if self.fusion is not None:
            emb = torch.from_numpy(embeddings).to(self.device)
            clin = torch.from_numpy(impute(clinical, self.fusion.clinical_mean.cpu().numpy())).to(self.device)
            flogits = self.fusion(emb, clin).cpu().numpy()
            scale = self.calibration.get("fused", {})
            fused = {
                t: _positive(flogits[:, 2 * i : 2 * i + 2], scale.get(t))
                for i, t in enumerate(self.fusion.tasks)
            }
        return Predictions(image, fused)


def _positive(logits: np.ndarray, ab=None) -> np.ndarray:
    """Softmax positive-class probability, or its Platt-scaled version when ``ab`` is given."""
    if ab is not None:
        return platt_probability(logits, tuple(ab))
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e[:, 1] / e.sum(axis=1)).astype(np.float64)


def find_onnx(path: Path) -> tuple[Path, Path | None, Path | None]:
    """``(model.onnx, fusion.onnx or None, model_card.json or None)`` for a repository, a
    model folder (``MODEL_NAME``) or an ``.onnx`` file."""
    path = Path(path)
    if path.is_dir():
        for candidate in (
            path / MODEL_NAME / "1" / "model.onnx",
            path / "1" / "model.onnx",
            path / "model.onnx",
        ):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise ValueError(f"no {MODEL_NAME}/1/model.onnx, 1/model.onnx or model.onnx under {path}")
    if path.suffix != ".onnx" or not path.is_file():
        raise ValueError(f"{path} is not an ONNX file")
    folder = path.parent.parent if path.parent.name.isdigit() else path.parent
    fusion, card = folder / FUSION_FILE, folder / MODEL_CARD_FILE
    return path, fusion if fusion.is_file() else None, card if card.is_file() else None


class OnnxPredictor:
    """Predict with the exported ONNX (and ``fusion.onnx``) through onnxruntime."""

    def __init__(self, path: Path, batch_size: int = 32):
        import onnxruntime as ort

        model_path, fusion_path, card_path = find_onnx(path)
        self.card = ModelCard.load(card_path.parent) if card_path else None
        self.session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        self.fusion = (
            ort.InferenceSession(str(fusion_path), providers=["CPUExecutionProvider"])
            if fusion_path
            else None
        )
        outputs = {o.name for o in self.session.get_outputs()}
        self.tasks = tuple(t for t in TASKS if probability_output(t) in outputs)
        self.image_size = int(self.session.get_inputs()[0].shape[-1])
        self.batch_size = batch_size
        self.thresholds = self.card.thresholds if self.card else None
        clinical = self.card.clinical if self.card else None
        self.fused_thresholds = clinical.fused_thresholds if clinical else None
        if self.fusion is not None and clinical is None:
            raise ValueError(f"{fusion_path} has no imputation means in its model card")
        self.description = f"onnx {model_path}"

    def predict(
        self, images: np.ndarray, clinical: np.ndarray, progress: Callable[[int], None] | None = None
    ) -> Predictions:
        names = [f"{t}_probability" for t in self.tasks] + ["embedding"]
        probs: dict[str, list[np.ndarray]] = {t: [] for t in self.tasks}
        fused: dict[str, list[np.ndarray]] = {t: [] for t in self.tasks}
        clinical = np.asarray(clinical, dtype=np.float32)
        for s in _batches(len(images), self.batch_size):
            out = self.session.run(names, {MODEL_INPUT: np.ascontiguousarray(images[s], dtype=np.uint8)})
            for t, p in zip(self.tasks, out[:-1], strict=True):
                probs[t].append(p[:, 0])
            if self.fusion is not None:
                fout = self.fusion.run(
                    None, {"embedding": out[-1], "clinical": self.card.impute(clinical[s])}
                )
                for o, p in zip(self.fusion.get_outputs(), fout, strict=True):
                    fused[o.name.removesuffix("_probability")].append(p[:, 0])
            if progress:
                progress(s.stop - s.start)
        image = {t: np.concatenate(v).astype(np.float64) for t, v in probs.items()}
        return Predictions(
            image,
            {t: np.concatenate(v).astype(np.float64) for t, v in fused.items()} if self.fusion else None,
        )


def load_predictor(path: Path, device: str = "cpu") -> TorchPredictor | OnnxPredictor:
    """An ONNX predictor for a repository / model folder / ``.onnx``; else a checkpoint's."""
    path = Path(path)
    if path.suffix == ".onnx" or (
        path.is_dir() and not (path / "best.pt").exists() and not (path / "last.pt").exists()
    ):
        return OnnxPredictor(path)
    return TorchPredictor(load_run_model(path), device)
