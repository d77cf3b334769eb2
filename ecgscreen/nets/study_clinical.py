"""The clinical part of the study's clinical models, as a fusion head with our contract.

The study's ``SingleTaskClinicalCNNModel`` and ``MultiTaskClinicalCNNModel`` (``mtecg/models.py``)
end their image path at the backbone's ``fc`` -- no ReLU, unlike its image-only models -- and
summarise the clinical features with a small recurrent network:

* the five categorical features, in the order ``female_gender, dm, ht, smoke, dlp``, are
  looked up in one shared ``nn.Embedding(2, E)``;
* the numerical feature, age / 100 (``mtecg.utils.load_ecg_dataframe`` divides by 100), is
  appended to each of the five embeddings: five tokens of ``E + 1``;
* a one-layer ``RNN`` or ``LSTM`` (``rnn_type``: ``rnn``, ``lstm``, ``birnn``, ``bilstm``)
  reads them sequence-first from a zero state; its final hidden state, forward and backward
  summed for the bidirectional types, is the clinical summary ``(B, H)``;
* ``[image embedding, summary]`` goes to each task's head, ``Linear(512 + H, 2)``.

``StudyClinicalFusion`` is that part alone. It takes our fusion contract -- the 512-d
embedding Triton returns and the six features in ``CLINICAL_FEATURES`` order, age in years
and the rest 0/1 (a value of at least 0.5 counts as 1, as a lookup needs an integer) -- and
does the study's encoding inside, so ``fusion.onnx`` needs nothing from the gateway but the
values. ``clinical_mean`` holds the values a missing feature takes (export writes them into
the model card, whose ``impute`` applies them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..contract import CLINICAL_FEATURES, EMBED_DIM, NUM_CLASSES, canonical_tasks

__all__ = ["RNN_TYPES", "StudyClinicalFusion"]

RNN_TYPES = ("rnn", "lstm", "birnn", "bilstm")
AGE_SCALE = 100.0  # the study trains on age / 100


class StudyClinicalFusion(nn.Module):
    """Image embedding + six clinical features -> logits ``(B, 2 * len(tasks))``, the study's way.

    Parameter names follow the study's modules where they exist (``embedding_layer``) so the
    import maps one to one; ``rnn`` is its ``clinical_rnn_layer``.
    """

    def __init__(
        self,
        tasks: tuple[str, ...] | list[str],
        rnn_type: str = "birnn",
        embedding_size: int = 5,
        hidden: int = 512,
        embed_dim: int = EMBED_DIM,
        bias: bool = True,
        num_classes: int = NUM_CLASSES,
    ):
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type {rnn_type!r} is not one of {', '.join(RNN_TYPES)}")
        self.tasks = canonical_tasks(tasks)
        self.lstm = rnn_type.endswith("lstm")
        self.directions = 2 if rnn_type.startswith("bi") else 1
        self.embedding_layer = nn.Embedding(2, embedding_size)
        rnn = nn.LSTM if self.lstm else nn.RNN
        self.rnn = rnn(embedding_size + 1, hidden, num_layers=1, bidirectional=self.directions == 2)
        for task in self.tasks:
            self.add_module(f"{task}_head", nn.Linear(embed_dim + hidden, num_classes, bias=bias))
        self.register_buffer("clinical_mean", torch.tensor([60.0, 0, 0, 0, 0, 0]))  # set by the import
        self.config: dict[str, Any] = {
            "kind": "study-clinical",
            "tasks": list(self.tasks),
            "rnn_type": rnn_type,
            "embedding_size": embedding_size,
            "hidden": hidden,
            "embed_dim": embed_dim,
            "bias": bias,
        }

    def head(self, task: str) -> nn.Linear:
        if task not in self.tasks:
            raise ValueError(f"fusion head has no {task!r} head; it has {list(self.tasks)}")
        return getattr(self, f"{task}_head")

    def summary(self, clinical: torch.Tensor) -> torch.Tensor:
        """The study's clinical summary ``(B, hidden)`` of ``clinical`` ``(B, 6)``."""
        batch = clinical.shape[0]
        age = (clinical[:, :1] / AGE_SCALE).unsqueeze(1).expand(-1, len(CLINICAL_FEATURES) - 1, 1)
        categories = self.embedding_layer((clinical[:, 1:] >= 0.5).long())  # (B, 5, E)
        tokens = torch.cat([categories, age], dim=2).transpose(0, 1)  # (5, B, E + 1), sequence first
        state = clinical.new_zeros(self.directions, batch, self.rnn.hidden_size)  # batch-agnostic ONNX
        if self.lstm:
            _, (hidden, _) = self.rnn(tokens, (state, torch.zeros_like(state)))
        else:
            _, hidden = self.rnn(tokens, state)
        return hidden.sum(dim=0)  # bidirectional: forward + backward, as the study sums them

    def forward(self, embedding: torch.Tensor, clinical: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([embedding, self.summary(clinical)], dim=1)
        return torch.cat([self.head(t)(fused) for t in self.tasks], dim=1)

    @torch.no_grad()
    def image_heads(self, clinical: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each task's head with ``clinical`` ``(6,)`` held fixed: ``(weight over the embedding,
        bias)`` such that ``embedding @ weight.T + bias`` equals this head's logits for it."""
        summary = self.summary(clinical.reshape(1, -1).to(torch.float32)).double()[0]
        dim = self.config["embed_dim"]
        heads = {}
        for task in self.tasks:
            head = self.head(task)
            bias = head.bias.double() if head.bias is not None else torch.zeros(head.out_features).double()
            heads[task] = (
                head.weight[:, :dim].clone(),
                (bias + head.weight[:, dim:].double() @ summary).float(),
            )
        return heads
