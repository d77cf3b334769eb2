"""Grad-CAM++ in closed form, computed inside the forward graph (and so inside the ONNX).

After the last conv block the network is ``GAP -> fc (W1, b1) -> ReLU -> head (W2, b2)``. For
the class score ``s_c`` (the positive class's logit) the gradient with respect to the feature
map ``A_k`` is the same at every position::

    g_k = (1 / (h * w)) * sum_j W2[c, j] * 1[z_j > 0] * W1[j, k],   z = W1 GAP(A) + b1

Grad-CAM++ (Chattopadhyay et al. 2018) uses the exponential ``Y_c = exp(s_c)``, whose second
and third derivatives are ``exp(s_c)`` times the square and the cube of the first (the score is
piecewise linear in ``A``). With a spatially constant ``g_k`` its pixel weights become::

    alpha_k = g_k^2 / (2 g_k^2 + sum_ab A_k,ab * g_k^3) = 1 / (2 + g_k * sum_ab A_k,ab)
    w_k     = sum_ij alpha_k * ReLU(g_k) = h * w * ReLU(g_k) / (2 + g_k * sum_ab A_k,ab)

(``exp(s_c)`` scales every ``w_k`` alike and drops out; ``A >= 0`` after the block's ReLU, so
the denominator is positive wherever ``g_k > 0``). The map is ``ReLU(sum_k w_k A_k)``, then
scaled to [0, 1] per image as pytorch-grad-cam does: ``(m - min) / (max - min + 1e-7)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .multitask import MultiTaskNet

__all__ = ["gradcam_pp", "normalize_maps", "CamModel"]

EPS = 1e-7


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Scale each ``(..., h, w)`` map to [0, 1] (all-zero maps stay zero)."""
    flat = maps.flatten(-2)
    low = flat.min(dim=-1, keepdim=True).values
    high = flat.max(dim=-1, keepdim=True).values
    return ((flat - low) / (high - low + EPS)).reshape(maps.shape)


def gradcam_pp(
    features: torch.Tensor,
    z: torch.Tensor,
    fc_weight: torch.Tensor,
    class_weight: torch.Tensor,
    relu: bool = True,
) -> torch.Tensor:
    """Grad-CAM++ maps ``(B, h, w)`` in [0, 1] for one class.

    Args:
        features: ``(B, K, h, w)`` output of the last conv block (non-negative).
        z: ``(B, E)`` pre-ReLU embedding ``fc(GAP(features))``.
        fc_weight: ``(E, K)`` weight of ``fc``.
        class_weight: ``(E,)`` row of the head's weight for the class explained.
        relu: whether a ReLU sits between ``fc`` and the head (without it, ``1[z_j > 0]``
            is 1 everywhere).
    """
    h, w = features.shape[-2:]
    gate = (z > 0).to(features.dtype) if relu else torch.ones_like(z)
    g = (gate * class_weight) @ fc_weight / (h * w)  # (B, K)
    total = features.sum(dim=(2, 3))  # (B, K)
    weights = (h * w) * torch.relu(g) / (2 + g * total)
    weights = torch.where(g > 0, weights, torch.zeros_like(weights))
    # a batched matmul rather than einsum: every ONNX runtime and TensorRT take it
    cam = torch.relu(torch.matmul(weights.unsqueeze(1), features.flatten(2)))  # (B, 1, h*w)
    return normalize_maps(cam.reshape(features.shape[0], h, w))


class CamModel(nn.Module):
    """``MultiTaskNet`` with every output the service needs, in one forward pass.

    Returns ``(logits (B, 2T), embedding (B, E), cam (B, T, h, w))``; ``cam[:, i]`` explains
    the positive class of ``model.tasks[i]``.
    """

    def __init__(self, model: MultiTaskNet):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(image)
        z, embedding = self.model.forward_embedding(features)
        logits = self.model.logits(embedding)
        fc_weight = self.model.backbone.fc.weight
        relu = self.model.config.get("embedding_relu", True)
        cams = [
            gradcam_pp(features, z, fc_weight, self.model.head(t).weight[1], relu) for t in self.model.tasks
        ]
        return logits, embedding, torch.stack(cams, dim=1)
