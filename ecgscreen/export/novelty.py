"""Inputs unlike anything trained on: the training embeddings' distribution, kept with the
model, and the Mahalanobis distance of a new answer's embedding from it.

The reading judge looks at the signal; this looks at what the network made of it. A picture
whose embedding lies far from every training ECG's (a layout, a pathology or an artefact the
model never saw) gets its answer with a warning. At export, the network's 512-d embeddings of
training ECGs (through the serving intake) give a mean and a shrunk covariance (Ledoit-Wolf:
512 dimensions from a few hundred ECGs); the distances of held-out ECGs set the threshold
(their 99th percentile). Both go into ``embedding_distribution.npz`` beside the model card,
which records the file, its hash, how many ECGs and the threshold (``card.novelty``).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from ..card import ModelCard, Novelty
from ..contract import MODEL_INPUT

__all__ = ["NOVELTY_FILE", "EmbeddingDistribution", "fit_novelty", "embeddings_of"]

NOVELTY_FILE = "embedding_distribution.npz"
THRESHOLD_QUANTILE = 0.99
HELD_OUT_SHARE = 0.25


class EmbeddingDistribution:
    """Mean and precision of the training embeddings; ``distance(e)`` is Mahalanobis."""

    def __init__(self, mean: np.ndarray, precision: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.precision = np.asarray(precision, dtype=np.float64)

    @classmethod
    def load(cls, path: Path) -> EmbeddingDistribution:
        with np.load(path) as data:
            return cls(data["mean"], data["precision"])

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, mean=self.mean.astype(np.float32), precision=self.precision.astype(np.float32)
        )

    def distance(self, embeddings: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``embeddings`` (``(B, D)`` or ``(D,)``)."""
        centred = np.atleast_2d(np.asarray(embeddings, dtype=np.float64)) - self.mean
        return np.sqrt(np.maximum(np.einsum("bi,ij,bj->b", centred, self.precision, centred), 0.0))


def embeddings_of(onnx_path: Path, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """The network's embeddings of canonical images (``(N, S, S)`` uint8)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    chunks = [
        session.run(["embedding"], {MODEL_INPUT: images[i : i + batch]})[0]
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(chunks).astype(np.float64)


def _canonicals(data_dir: Path, split: str | None, limit: int, size: int, progress=None) -> np.ndarray:
    """Canonical inputs of up to ``limit`` files of ``split`` (all when ``None``), through the
    serving intake; files it refuses are left out (they never reach the network)."""
    from ..imaging.errors import IntakeError
    from ..imaging.pipeline import preprocess

    with open(Path(data_dir) / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if split is None or r.get("split") == split][:limit]
    images = []
    for row in rows:
        try:
            images.append(preprocess((Path(data_dir) / row["path"]).read_bytes(), size).canonical)
        except IntakeError:
            pass
        if progress:
            progress(1)
    return np.stack(images)


def fit_novelty(
    repository: Path,
    data_dir: Path,
    split: str | None = "train",
    limit: int = 800,
    progress=None,
    name: str = "",
) -> ModelCard:
    """Fit the embedding distribution of the model in ``repository`` on ``data_dir``'s
    ``split``, write it beside the card and record it there; return the card."""
    from sklearn.covariance import LedoitWolf

    from ..contract import MODEL_NAME

    folder = Path(repository) / (name or MODEL_NAME)
    card = ModelCard.load(folder)
    images = _canonicals(data_dir, split, limit, card.input_size, progress)
    embeddings = embeddings_of(folder / card.onnx.file, images)
    rng = np.random.default_rng(0)
    held_out = rng.random(len(embeddings)) < HELD_OUT_SHARE
    fitted = LedoitWolf().fit(embeddings[~held_out])
    distribution = EmbeddingDistribution(fitted.location_, fitted.precision_)
    threshold = float(np.quantile(distribution.distance(embeddings[held_out]), THRESHOLD_QUANTILE))
    path = folder / NOVELTY_FILE
    distribution.save(path)
    card.novelty = Novelty(
        file=NOVELTY_FILE,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        n=int((~held_out).sum()),
        threshold=round(threshold, 3),
        source=f"{Path(data_dir).name}, split {split or 'all'}: embeddings of {int((~held_out).sum())} ECGs "
        f"through the serving intake (Ledoit-Wolf covariance); threshold = the "
        f"{THRESHOLD_QUANTILE:.0%} quantile of {int(held_out.sum())} held-out ECGs' distances",
    )
    card.save(folder)
    return card
