"""Training checkpoints: one ``.pt`` dict that rebuilds the image model and the fusion head.

Layout (``FORMAT``)::

    {"format": "ecgscreen-checkpoint/1",
     "model": {"config": MultiTaskNet.config, "state_dict": ...},
     "fusion": {"config": ClinicalFusion.config, "state_dict": ...} | None,
     "train_config": {...}, "data": {"labels_sha256", "description", "n", "prevalence"},
     "epoch", "best_val_loss", "bad_epochs", "history", "finished",
     "optimizer", "scheduler"}          # the last two only in last.pt

A run folder holds ``last.pt`` (resume) and ``best.pt`` (lowest validation loss).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..nets.multitask import ClinicalFusion, MultiTaskNet, build_model

__all__ = [
    "FORMAT",
    "RunModel",
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "run_model_from",
    "load_run_model",
]

FORMAT = "ecgscreen-checkpoint/1"


@dataclass
class RunModel:
    """A trained image model, its optional fusion head and the checkpoint's metadata."""

    model: MultiTaskNet
    fusion: ClinicalFusion | None
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (a crash never leaves half a checkpoint)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def resolve_checkpoint(path: Path) -> Path:
    """A run folder means its ``best.pt``; a file is taken as it is."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise ValueError(f"{path} has no best.pt or last.pt")
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = resolve_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ecgscreen checkpoint (format {FORMAT!r})")
    return ckpt


def run_model_from(ckpt: dict[str, Any], path: str = "(in memory)") -> RunModel:
    """Rebuild the model (and fusion head) of a checkpoint dict, in eval mode."""
    model = build_model(ckpt["model"]["config"])
    model.load_state_dict(ckpt["model"]["state_dict"])
    fusion = None
    if ckpt.get("fusion"):
        fusion = ClinicalFusion(**ckpt["fusion"]["config"])
        fusion.load_state_dict(ckpt["fusion"]["state_dict"])
        fusion.eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "fusion", "optimizer", "scheduler")}
    meta["path"] = path
    return RunModel(model.eval(), fusion, meta)


def load_run_model(path: Path) -> RunModel:
    """Rebuild the model (and fusion head) of a run folder or checkpoint file, in eval mode."""
    return run_model_from(load_checkpoint(path), str(resolve_checkpoint(path)))
