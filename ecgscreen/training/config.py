"""Training configuration: a flat dataclass read from YAML, validated, overridable by ``key=value``.

The study's matrix ships as packaged YAML files (``ecgscreen/training/configs/*.yaml``); a config is
named by path or by one of those names (``demo``, ``multitask``, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..contract import CANONICAL_SIZE, EMBED_DIM, TASKS
from ..nets.resnet import list_models

__all__ = ["TrainConfig", "CONFIG_DIR", "packaged_configs", "load_config"]

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class TrainConfig:
    """Everything a training run depends on (besides the data and the device)."""

    name: str = "multitask"
    # model
    backbone: str = "resnet34d"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    image_size: int = CANONICAL_SIZE  # what the served intake draws (ecgscreen.contract)
    embed_dim: int = EMBED_DIM
    # loss: weighted sum of the tasks' cross-entropies (the study: 0.7 MS + 0.3 LVEF),
    # each with inverse-frequency class weights from the training split
    task_weights: dict[str, float] = field(default_factory=lambda: {"scar": 0.7, "lvef": 0.3})
    class_weights: bool = True
    # optimisation: AdamW, linear warm-up then linear decay to zero, per step
    epochs: int = 20
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    # early stopping on the validation loss (patience 0: never stop early)
    patience: int = 5
    min_delta: float = 1e-4
    # augmentation probabilities (ecgscreen.augment.build_augment); {} for none
    augment: dict[str, float] = field(
        default_factory=lambda: {"blur": 0.3, "brightness_contrast": 0.5, "motion_blur": 0.3}
    )
    # format invariance: with `signals/` beside labels.csv (synth --save-signals), each
    # training image is paired with one painted from its recording, distorted as a digitiser
    # would (probabilities per distortion, ecgscreen.training.signal_augment), and the loss
    # adds `consistency` x the symmetric KL between the two answers
    paired: bool = False
    consistency: float = 0.0
    signal_augment: dict[str, float] = field(
        default_factory=lambda: {"gain": 0.8, "time": 0.8, "band": 0.7, "gaps": 0.3, "clip": 0.1}
    )
    # transfer: start from another run's weights (backbone, and heads of shared tasks)
    init_from: str | None = None
    require_init: bool = False  # transfer configs: refuse to train from scratch by mistake
    # clinical fusion: fit ClinicalFusion on the frozen embeddings of the best image model
    fusion: bool = False
    fusion_epochs: int = 300
    fusion_lr: float = 3e-3
    fusion_batch_size: int = 256
    fusion_patience: int = 30
    fusion_feature_dropout: float = 0.1  # share of features replaced by the mean (missing-data drill)
    # run
    seed: int = 0
    num_workers: int = 0
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        if self.backbone not in list_models():
            raise ValueError(
                f"unknown backbone {self.backbone!r}; expected one of {', '.join(list_models())}"
            )
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown:
            raise ValueError(f"tasks {self.tasks} must be a non-empty subset of {list(TASKS)}")
        missing = [t for t in self.tasks if t not in self.task_weights]
        if missing:
            raise ValueError(f"task_weights {self.task_weights} lack task(s) {missing}")
        if any(self.task_weights[t] <= 0 for t in self.tasks):
            raise ValueError(f"task_weights {self.task_weights} must be positive")
        if self.image_size % 32 or self.image_size < 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {self.image_size}")
        for name in ("batch_size", "eval_batch_size", "fusion_batch_size", "n_bootstrap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "epochs",
            "patience",
            "fusion_epochs",
            "fusion_patience",
            "num_workers",
            "warmup_epochs",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.fusion_lr <= 0:
            raise ValueError(f"learning rates must be positive, got lr={self.lr}, fusion_lr={self.fusion_lr}")
        if self.epochs == 0 and not self.init_from:
            raise ValueError("epochs: 0 trains nothing; it needs init_from (a run to add a fusion head to)")
        if self.require_init and not self.init_from:
            raise ValueError(f"config {self.name!r} fine-tunes another run: give init_from (--init RUN)")
        if self.consistency < 0:
            raise ValueError(f"consistency must be >= 0, got {self.consistency}")
        if self.consistency > 0 and not self.paired:
            raise ValueError("consistency compares paired views: set paired: true as well")
        if not 0 <= self.fusion_feature_dropout < 1:
            raise ValueError(f"fusion_feature_dropout must be in [0, 1), got {self.fusion_feature_dropout}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known: {', '.join(sorted(names))}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        coerced = dict(values)
        for key, value in values.items():
            caster = {"float": float, "int": int}.get(str(types[key]))
            if caster is not None and not isinstance(value, bool):
                try:
                    coerced[key] = caster(value)
                except (TypeError, ValueError):
                    raise ValueError(f"config key {key!r} must be a number, got {value!r}") from None
        return cls(**coerced)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def loss_weights(self) -> dict[str, float]:
        """Task weights normalised over the tasks trained (a single task gets 1)."""
        total = sum(self.task_weights[t] for t in self.tasks)
        return {t: self.task_weights[t] / total for t in self.tasks}


def packaged_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {item!r} must look like key=value")
    return key.strip(), yaml.safe_load(value)


def load_config(source: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (a path, or a packaged name such as ``demo``) and apply overrides."""
    path = Path(source)
    if not path.is_file():
        packaged = CONFIG_DIR / f"{source}.yaml"
        if not packaged.is_file():
            raise ValueError(
                f"no config file {source!r} and no packaged config of that name ({', '.join(packaged_configs())})"
            )
        path = packaged
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, got {type(values).__name__}")
    values.update(dict(_parse_override(o) for o in overrides))
    return TrainConfig.from_dict(values)
