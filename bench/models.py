"""The networks the benchmarks serve: the committed demo model, or a network with seeded random
weights (timing does not depend on the weights) exported through the native export path into
a temporary model repository, and the same network in torch for an eager forward."""

from __future__ import annotations

from pathlib import Path

import torch

from ecgscreen.contract import MODEL_NAME
from ecgscreen.export.onnx_export import export_model
from ecgscreen.export.triton_configs import complete_repository
from ecgscreen.nets.multitask import MultiTaskNet
from ecgscreen.serving.triton import DEFAULT_REPOSITORY
from ecgscreen.training.checkpoint import RunModel

__all__ = ["DEMO", "random_network", "repository_for", "onnx_path"]

DEMO = "demo"  # the committed model_repository/ecg_multitask


def random_network(backbone: str, seed: int = 0) -> MultiTaskNet:
    """``backbone``'s multi-task network with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return MultiTaskNet(backbone=backbone).eval()


def repository_for(backbone: str, folder: Path, seed: int = 0) -> Path:
    """The committed repository for ``DEMO``; otherwise a new one in ``folder`` serving
    ``random_network(backbone, seed)`` with the committed intake, ensemble and configs."""
    if backbone == DEMO:
        return DEFAULT_REPOSITORY
    repository = Path(folder) / f"repository-{backbone}"
    complete_repository(repository)
    source = {"kind": "benchmark", "weights": f"random, torch.manual_seed({seed})"}
    export_model(RunModel(random_network(backbone, seed), None, {}), repository, source=source)
    return repository


def onnx_path(repository: Path) -> Path:
    return Path(repository) / MODEL_NAME / "1" / "model.onnx"
