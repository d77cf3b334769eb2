"""The study's networks: one image backbone, a 512-d embedding, one 2-class head per task.

``MultiTaskNet`` is the study's model: a timm-compatible ResNet-D whose ``fc`` maps the pooled
features to a 512-d embedding, a ReLU, then ``scar_head`` and ``lvef_head`` (``Linear(512,
2)``; class 1 is the positive one). With one task it is the study's single-task baseline.

``ClinicalFusion`` is the study's clinical variant, built as a *separate* module so that the
image part (Triton) and the fusion head (the gateway) export and run apart: each of the five
binary features and age becomes a token, a bidirectional GRU reads the six tokens, and its
two final states are concatenated with the image embedding before one head per task.
The module keeps the training means (``clinical_mean``): the export writes them into the
model card, whose ``impute`` fills missing features with them, so the exported head takes a
complete float vector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..contract import CANONICAL_SIZE, CLINICAL_FEATURES, EMBED_DIM, NUM_CLASSES, TASKS, canonical_tasks
from .resnet import create_model, default_cfgs

__all__ = ["MultiTaskNet", "ClinicalFusion", "build_model"]


class MultiTaskNet(nn.Module):
    """Backbone -> ``fc`` (embedding) -> ReLU -> ``<task>_head`` for each task.

    Shape contract: ``(B, 3, S, S)`` -> logits ``(B, 2 * len(tasks))`` (per task: negative,
    positive), embedding ``(B, embed_dim)``, features ``(B, C, S/32, S/32)``.

    Args:
        backbone: a registered ResNet-D variant (``ecgscreen.nets.resnet.list_models()``).
        tasks: subset of ``("scar", "lvef")``; always held in that order.
        embed_dim: width of the embedding (the study: 512).
        image_size: the input size the model is trained and exported for.
        backbone_args: overrides of the variant's arguments (e.g. ``channels``, ``stem_width``
            of an imported checkpoint).
        embedding_relu: ReLU after ``fc`` (the study's image models); its clinical models feed
            the raw ``fc`` output to their heads, so an imported clinical model has none.
    """

    def __init__(
        self,
        backbone: str = "resnet34d",
        tasks: tuple[str, ...] | list[str] = TASKS,
        embed_dim: int = EMBED_DIM,
        image_size: int = CANONICAL_SIZE,
        num_classes: int = NUM_CLASSES,
        backbone_args: dict[str, Any] | None = None,
        embedding_relu: bool = True,
    ):
        super().__init__()
        self.tasks = canonical_tasks(tasks)
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.backbone = create_model(backbone, num_classes=embed_dim, **(backbone_args or {}))
        self.act = nn.ReLU() if embedding_relu else nn.Identity()
        for task in self.tasks:
            self.add_module(f"{task}_head", nn.Linear(embed_dim, num_classes))
        self.config: dict[str, Any] = {
            "backbone": backbone,
            "tasks": list(self.tasks),
            "embed_dim": embed_dim,
            "image_size": image_size,
            "num_classes": num_classes,
            "mean": list(default_cfgs[backbone]["mean"]),
            "std": list(default_cfgs[backbone]["std"]),
        }
        if backbone_args:
            self.config["backbone_args"] = dict(backbone_args)
        if not embedding_relu:
            self.config["embedding_relu"] = False

    def head(self, task: str) -> nn.Linear:
        if task not in self.tasks:
            raise ValueError(f"model has no {task!r} head; it has {list(self.tasks)}")
        return getattr(self, f"{task}_head")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_embedding(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-activation ``z = fc(GAP(features))`` and the embedding ``ReLU(z)`` (``z`` itself
        without ``embedding_relu``)."""
        z = self.backbone.forward_head(features)
        return z, self.act(z)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        _, embedding = self.forward_embedding(features)
        if pre_logits:
            return embedding
        return self.logits(embedding)

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.head(t)(embedding) for t in self.tasks], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ClinicalFusion(nn.Module):
    """Image embedding + six clinical features -> logits ``(B, 2 * len(tasks))``.

    Tokens: a binary feature ``x`` in [0, 1] becomes ``(1 - x) * E[f, 0] + x * E[f, 1]`` (an
    embedding lookup for 0/1, and a blend for an imputed mean); age is standardised with the
    training mean/std and projected linearly. A learned per-feature vector is added to each
    token, a bidirectional GRU reads the six tokens in ``CLINICAL_FEATURES`` order and its
    final forward/backward states (``2 * hidden``) join the embedding.

    Shape contract: ``embedding (B, embed_dim)``, ``clinical (B, 6)`` complete (use
    ``ecgscreen.card.impute`` first) -> logits ``(B, 2 * len(tasks))``.
    """

    def __init__(
        self,
        tasks: tuple[str, ...] | list[str] = TASKS,
        embed_dim: int = EMBED_DIM,
        token_dim: int = 16,
        hidden: int = 16,
        num_classes: int = NUM_CLASSES,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.tasks = canonical_tasks(tasks)
        n_binary = len(CLINICAL_FEATURES) - 1
        self.binary_embed = nn.Parameter(0.1 * torch.randn(n_binary, 2, token_dim))
        self.age_proj = nn.Linear(1, token_dim)
        self.feature_embed = nn.Parameter(0.1 * torch.randn(len(CLINICAL_FEATURES), token_dim))
        self.rnn = nn.GRU(token_dim, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        for task in self.tasks:
            self.add_module(f"{task}_head", nn.Linear(embed_dim + 2 * hidden, num_classes))
        # training statistics: imputation values (means) and the age standardisation
        self.register_buffer("clinical_mean", torch.tensor([55.0, 0.5, 0.5, 0.5, 0.5, 0.5]))
        self.register_buffer("age_std", torch.tensor(12.0))
        self.config: dict[str, Any] = {
            "tasks": list(self.tasks),
            "embed_dim": embed_dim,
            "token_dim": token_dim,
            "hidden": hidden,
            "num_classes": num_classes,
            "dropout": dropout,
        }

    def head(self, task: str) -> nn.Linear:
        if task not in self.tasks:
            raise ValueError(f"fusion head has no {task!r} head; it has {list(self.tasks)}")
        return getattr(self, f"{task}_head")

    def set_statistics(self, clinical: torch.Tensor) -> None:
        """Store the training set's means (imputation) and age spread; NaN marks missing."""
        if clinical.ndim != 2 or clinical.shape[1] != len(CLINICAL_FEATURES):
            raise ValueError(f"clinical must be (N, {len(CLINICAL_FEATURES)}), got {tuple(clinical.shape)}")
        mean = torch.nanmean(clinical.double(), dim=0)
        if torch.isnan(mean).any():
            raise ValueError(f"a clinical feature is missing in every training row: means {mean.tolist()}")
        ages = clinical[:, 0].double()
        ages = ages[~torch.isnan(ages)]
        std = float(ages.std()) if ages.numel() > 1 else 12.0
        self.clinical_mean.copy_(mean.float())
        self.age_std.fill_(max(std, 1.0))

    def init_from_image_heads(self, model: MultiTaskNet) -> None:
        """Start as the image model: copy its heads, zero the clinical part of each head."""
        for task in self.tasks:
            fused, image = self.head(task), model.head(task)
            with torch.no_grad():
                fused.weight.zero_()
                fused.weight[:, : image.in_features].copy_(image.weight)
                fused.bias.copy_(image.bias)

    def tokens(self, clinical: torch.Tensor) -> torch.Tensor:
        age = (clinical[:, :1] - self.clinical_mean[0]) / self.age_std
        age_token = self.age_proj(age).unsqueeze(1)  # (B, 1, d)
        x = clinical[:, 1:].unsqueeze(-1)  # (B, 5, 1)
        binary = (1 - x) * self.binary_embed[:, 0] + x * self.binary_embed[:, 1]  # (B, 5, d)
        return torch.cat([age_token, binary], dim=1) + self.feature_embed

    def forward(self, embedding: torch.Tensor, clinical: torch.Tensor) -> torch.Tensor:
        h0 = embedding.new_zeros(2, embedding.shape[0], self.rnn.hidden_size)  # explicit: batch-agnostic ONNX
        _, h = self.rnn(self.tokens(clinical), h0)  # h: (2, B, hidden): forward and backward
        fused = torch.cat([embedding, self.drop(torch.cat([h[0], h[1]], dim=1))], dim=1)
        return torch.cat([self.head(t)(fused) for t in self.tasks], dim=1)


def build_model(config: dict[str, Any]) -> MultiTaskNet:
    """Rebuild a ``MultiTaskNet`` from its ``config`` (as saved in checkpoints)."""
    known = {"backbone", "tasks", "embed_dim", "image_size", "num_classes", "backbone_args", "embedding_relu"}
    return MultiTaskNet(**{k: v for k, v in config.items() if k in known})
