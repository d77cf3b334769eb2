"""``ecgscreen import-mtecg``: the study's own checkpoint folder into the Triton repository.

The study's code (PyTorch Lightning) leaves a folder with:

* ``model.ckpt`` — a Lightning checkpoint: ``{"state_dict": ..., "epoch", "global_step",
  "pytorch-lightning_version", "hyper_parameters", ...}``, whose ``state_dict`` holds
  ``model.*`` (a timm ``resnet34d`` whose ``fc`` maps to the 512-d embedding) and
  ``scar_head.*`` / ``lvef_head.*`` (``Linear(512, 2)``);
* ``configs.json`` — e.g. ``{"backbone": "resnet34d", "image_size": <pixels>, "num_classes": 2}``;
* ``transform.json`` — the input normalisation (mean/std) and resize, either flat or as a
  serialised albumentations pipeline.

Keys map one to one (``model.`` -> ``backbone.``, heads unchanged); every key and shape is
checked, and a mismatch is reported in full. If the study normalised differently from the
service (ImageNet), the exported graph converts, so the served input stays the same.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from ..card import ModelCard
from ..contract import CANONICAL_SIZE, EMBED_DIM, IMAGENET_MEAN, IMAGENET_STD, MODEL_NAME, TASKS
from ..nets.multitask import MultiTaskNet
from ..nets.resnet import list_models
from ..training.checkpoint import RunModel
from .onnx_export import export_model

__all__ = ["read_lightning_checkpoint", "map_state_dict", "read_transform", "load_mtecg", "import_mtecg"]

log = logging.getLogger(__name__)


def read_lightning_checkpoint(path: Path, trust_pickle: bool = False) -> dict[str, Any]:
    """Load ``model.ckpt``; only tensors and plain data unless ``trust_pickle``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint file {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            raise ValueError(
                f"{path} holds Python objects beyond tensors and plain data ({str(exc).splitlines()[0]}); "
                "load it only if you trust its source, with --trust-pickle"
            ) from None
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{path} is not a Lightning checkpoint: no 'state_dict' mapping")
    return ckpt


def _tasks_in(state: dict[str, torch.Tensor]) -> tuple[str, ...]:
    return tuple(t for t in TASKS if f"{t}_head.weight" in state)


def _limited(items: list[str], n: int = 12) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def map_state_dict(state: dict[str, torch.Tensor], model: MultiTaskNet) -> dict[str, torch.Tensor]:
    """The study's keys as ours; raise ``ValueError`` listing every missing, unexpected or
    mis-shaped key. Only BatchNorm's ``num_batches_tracked`` counters may be absent."""
    mapped, unexpected = {}, []
    for key, value in state.items():
        if key.startswith("model."):
            mapped["backbone." + key.removeprefix("model.")] = value
        elif key.split(".")[0] in {f"{t}_head" for t in TASKS}:
            mapped[key] = value
        else:
            unexpected.append(key)
    expected = model.state_dict()
    back = lambda k: "model." + k.removeprefix("backbone.") if k.startswith("backbone.") else k  # noqa: E731
    unexpected += [back(k) for k in mapped if k not in expected]
    missing = [back(k) for k in expected if k not in mapped and not k.endswith("num_batches_tracked")]
    shapes = [
        f"{back(k)} {tuple(mapped[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in mapped and tuple(mapped[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_limited(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_limited(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (checkpoint != {model.config['backbone']}): {_limited(shapes)}")
    if problems:
        raise ValueError("checkpoint does not match the network; " + "; ".join(problems))
    for k, v in expected.items():
        if k not in mapped:  # num_batches_tracked: bookkeeping only, never used in eval
            mapped[k] = torch.zeros_like(v)
    return {k: mapped[k] for k in expected}


def _find(node: Any, key: str) -> Any:
    """First value under ``key`` anywhere in a nested JSON structure."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def read_transform(path: Path) -> dict[str, Any]:
    """``{"mean", "std", "size"}`` from ``transform.json`` (flat or albumentations-serialised)."""
    if not Path(path).is_file():
        log.warning("no %s: assuming ImageNet mean/std", path)
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "size": None}
    spec = json.loads(Path(path).read_text())
    mean, std = _find(spec, "mean"), _find(spec, "std")
    if mean is None or std is None:
        log.warning("%s names no mean/std: assuming ImageNet", path)
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    mean = [float(v) for v in (mean if isinstance(mean, list) else [mean] * 3)]
    std = [float(v) for v in (std if isinstance(std, list) else [std] * 3)]
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"{path}: mean {mean} and std {std} must be three values, std positive")
    if max(mean) > 1.0:  # given in pixel units
        scale = float(_find(spec, "max_pixel_value") or 255.0)
        mean, std = [m / scale for m in mean], [s / scale for s in std]
    size = _find(spec, "image_size") or _find(spec, "resize") or _find(spec, "height") or _find(spec, "size")
    if isinstance(size, dict):  # e.g. {"resize": {"height": 512, "width": 512}}
        size = size.get("height") or size.get("size")
    if isinstance(size, list):
        size = size[0]
    try:
        size = int(size) if size else None
    except (TypeError, ValueError):
        raise ValueError(f"{path}: cannot read an image size from {size!r}") from None
    return {"mean": mean, "std": std, "size": size}


def load_mtecg(folder: Path, trust_pickle: bool = False) -> tuple[RunModel, dict[str, Any]]:
    """Rebuild the study's model from its folder; return it and what was read."""
    folder = Path(folder)
    ckpt = read_lightning_checkpoint(folder / "model.ckpt", trust_pickle)
    configs_path = folder / "configs.json"
    configs = json.loads(configs_path.read_text()) if configs_path.is_file() else {}
    transform = read_transform(folder / "transform.json")
    backbone = configs.get("backbone", "resnet34d")
    if backbone not in list_models():
        raise ValueError(
            f"configs.json backbone {backbone!r} is not supported; expected one of {', '.join(list_models())}"
        )
    if int(configs.get("num_classes", 2)) != 2:
        raise ValueError(
            f"configs.json num_classes {configs['num_classes']} != 2 (the study's two-class heads)"
        )
    size = int(configs.get("image_size") or transform["size"] or CANONICAL_SIZE)
    if transform["size"] and transform["size"] != size:
        raise ValueError(
            f"configs.json image_size {size} and transform.json size {transform['size']} disagree"
        )
    state = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    tasks = _tasks_in(state)
    if not tasks:
        raise ValueError(f"{folder / 'model.ckpt'} has neither scar_head nor lvef_head weights")
    fc = state.get("model.fc.weight")
    embed_dim = int(fc.shape[0]) if fc is not None else EMBED_DIM
    model = MultiTaskNet(backbone, tasks, embed_dim, size)
    model.load_state_dict(map_state_dict(state, model), strict=True)
    model.config["mean"], model.config["std"] = transform["mean"], transform["std"]
    info = {
        "kind": "mtecg-checkpoint",
        "folder": folder.resolve().name,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "pytorch_lightning_version": ckpt.get("pytorch-lightning_version"),
        "configs": configs,
        "transform": transform,
    }
    meta = {"data": {"description": "the study's private CMR-labelled ECG images (not shipped)"}}
    return RunModel(model.eval(), None, meta), info


def import_mtecg(
    folder: Path, repository: Path, name: str = MODEL_NAME, version: int = 1, trust_pickle: bool = False
) -> ModelCard:
    """Export the study's checkpoint as ``name`` into ``repository`` with its model card."""
    run, info = load_mtecg(folder, trust_pickle)
    return export_model(
        run,
        repository,
        name,
        version,
        input_mean=list(IMAGENET_MEAN),
        input_std=list(IMAGENET_STD),
        source=info,
    )
