"""The networks the benchmarks serve: the committed demo model, or a network with seeded random
weights (timing does not depend on the weights) exported through the native export path into
a temporary model repository, and the same network in torch for an eager forward.

A random network is exported as ``ecgscreen export`` does it, INT8 variant included (its
parity gate decides, as in production, whether the CPU config serves it). Making the variant
takes minutes (``resnet34d``: about 9 on 2 cores: calibration and 600 fresh ECGs through the
intake), so the finished model folder is kept under ``build/bench/models/``, keyed by the
sha256 of the FP32 ONNX and of ``export/quantize.py``: the next run with the same network and
recipe reuses it. Delete the folder to redo it (say, after the intake changed what it paints).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import torch

from ecgscreen.card import ModelCard
from ecgscreen.contract import MODEL_NAME
from ecgscreen.export import quantize
from ecgscreen.export.onnx_export import export_model
from ecgscreen.export.quantize import Int8Options, quantize_export
from ecgscreen.export.triton_configs import complete_repository
from ecgscreen.nets.multitask import MultiTaskNet
from ecgscreen.serving.precision import cpu_network
from ecgscreen.serving.triton import DEFAULT_REPOSITORY
from ecgscreen.training.checkpoint import RunModel

__all__ = ["DEMO", "CACHE", "random_network", "repository_for", "onnx_path", "served_variant"]

DEMO = "demo"  # the committed model_repository/ecg_multitask
CACHE = Path(__file__).resolve().parents[1] / "build" / "bench" / "models"


def random_network(backbone: str, seed: int = 0) -> MultiTaskNet:
    """``backbone``'s multi-task network with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return MultiTaskNet(backbone=backbone).eval()


def repository_for(backbone: str, folder: Path, seed: int = 0, int8: bool = True) -> Path:
    """The committed repository for ``DEMO``; otherwise a new one in ``folder`` serving
    ``random_network(backbone, seed)`` with the committed intake, ensemble and configs, and
    (``int8``) the network's INT8 variant, reused from ``CACHE`` when it was made before."""
    if backbone == DEMO:
        return DEFAULT_REPOSITORY
    repository = Path(folder) / f"repository-{backbone}"
    complete_repository(repository)
    source = {"kind": "benchmark", "weights": f"random, torch.manual_seed({seed})"}
    export_model(RunModel(random_network(backbone, seed), None, {}), repository, source=source)
    if int8:
        _add_int8(repository / MODEL_NAME, backbone)
    return repository


def _add_int8(model_folder: Path, backbone: str) -> None:
    """Quantize ``model_folder``'s network (``quantize_export``'s defaults), or copy the result
    of an earlier run on the same FP32 network."""
    fp32 = model_folder / ModelCard.load(model_folder).onnx.file
    digest = hashlib.sha256(fp32.read_bytes() + Path(quantize.__file__).read_bytes()).hexdigest()[:16]
    cached = CACHE / f"{backbone}-{digest}"
    if not (cached / "done").is_file():
        print(
            f"  making {backbone}'s INT8 variant (minutes; kept in {cached} for the next run) ...", flush=True
        )
        start = time.perf_counter()
        quantize_export(model_folder.parent, model_folder.name, Int8Options())
        shutil.rmtree(cached, ignore_errors=True)
        shutil.copytree(model_folder, cached, ignore=shutil.ignore_patterns("__pycache__"))
        (cached / "done").write_text(f"{time.perf_counter() - start:.0f} s\n")
    shutil.copytree(cached, model_folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("done"))
    card = ModelCard.load(model_folder)
    verdict = "passed: the CPU config serves it" if card.int8.passed else f"refused ({card.int8.refused})"
    print(f"  {backbone} INT8: max |dP| fresh {card.int8.max_abs_diff_fresh:.5f}, {verdict}", flush=True)


def served_variant(repository: Path) -> str:
    """``"int8"`` or ``"fp32"``: what ``repository``'s CPU config runs (``serving.precision``)."""
    return cpu_network(ModelCard.load(Path(repository) / MODEL_NAME)).precision


def onnx_path(repository: Path) -> Path:
    """The network file the CPU config serves (the INT8 variant when it passed)."""
    folder = Path(repository) / MODEL_NAME
    return folder / cpu_network(ModelCard.load(folder)).file
