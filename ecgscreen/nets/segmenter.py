"""The page segmenter: a small U-Net that labels every pixel of a printed ECG page.

Plain torch, on purpose (not MONAI's ``BasicUNet``, whose layout it follows: ``TwoConv``,
``Down``, ``UpCat`` composed by one class whose width is one ``features`` tuple): MONAI's
``UpCat`` matches odd sizes with a padding that ONNX tracing freezes to the example's shape,
and ``ConvTranspose`` cannot reach an odd skip size. Here the decoder reduces the channels with
a 1x1 conv at the coarse level, then resizes to the skip's own size (bilinear, ``Resize`` with
dynamic sizes in ONNX), so the exported graph takes any height and width, not only multiples
of 16, and the fine levels stay cheap.

Shape contract: ``(B, in_channels, H, W)`` float, normalised (``SegmenterNet.normalise``) ->
raw logits ``(B, num_classes, H, W)``, classes in ``contract.SEGMENTER_CLASSES`` order. Any
``H, W >= 2 ** (len(features) - 1)``.

Variants are dicts of arguments (``SEGMENTER_VARIANTS``); ``build_segmenter`` makes one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..contract import SEGMENTER_CLASSES, SEGMENTER_MEAN, SEGMENTER_STD

__all__ = ["TwoConv", "Down", "UpCat", "SegmenterNet", "SEGMENTER_VARIANTS", "build_segmenter"]


class TwoConv(nn.Sequential):
    """Two (conv 3x3, batch norm, ReLU); the norms fold into the convs at export."""

    def __init__(self, in_channels: int, out_channels: int):
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                nn.Conv2d(c_in, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class Down(nn.Sequential):
    """Max-pool by 2 (floor: odd sizes lose their last row/column), then ``TwoConv``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.MaxPool2d(2), TwoConv(in_channels, out_channels))


class UpCat(nn.Module):
    """1x1 conv to the skip's width at the coarse level, bilinear resize to the skip's size,
    concatenate with the skip, ``TwoConv``."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, skip_channels, 1)
        self.convs = TwoConv(2 * skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([skip, x], dim=1))


class SegmenterNet(nn.Module):
    """U-Net with ``len(features) - 1`` poolings; ``features[0]`` is the full-resolution width.

    Args:
        in_channels: 3 (RGB; a grey page is given as three equal channels).
        num_classes: per-pixel classes (``len(SEGMENTER_CLASSES)``).
        features: the width at each level, fine to coarse (e.g. ``(8, 16, 32, 64, 96)``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = len(SEGMENTER_CLASSES),
        features: tuple[int, ...] | list[int] = (8, 16, 32, 64, 96),
    ):
        super().__init__()
        features = tuple(int(f) for f in features)
        if len(features) < 2 or min(features) < 1:
            raise ValueError(f"features {features} must give at least two levels of positive width")
        if in_channels < 1 or num_classes < 2:
            raise ValueError(f"in_channels {in_channels} must be >= 1 and num_classes {num_classes} >= 2")
        self.stem = TwoConv(in_channels, features[0])
        self.downs = nn.ModuleList(Down(a, b) for a, b in zip(features[:-1], features[1:], strict=True))
        self.ups = nn.ModuleList(
            UpCat(features[i + 1], features[i], features[i]) for i in reversed(range(len(features) - 1))
        )
        self.head = nn.Conv2d(features[0], num_classes, 1)
        self.register_buffer("mean", torch.tensor(SEGMENTER_MEAN, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(SEGMENTER_STD, dtype=torch.float32).view(1, -1, 1, 1))
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "features": list(features),
        }

    @property
    def min_size(self) -> int:
        return 2 ** len(self.downs)

    def normalise(self, pages: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, H, W, 3)`` pages -> the float ``(B, 3, H, W)`` input:
        ``(x / 255 - mean) / std`` (the exported graph's first step)."""
        x = pages.permute(0, 3, 1, 2).float() / 255.0
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)


# Variants: dicts of arguments. "small" is the committed one (ONNX ~0.6 MB).
SEGMENTER_VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": {"features": (4, 8, 16, 32)},  # tests
    "small": {"features": (8, 16, 32, 64, 96)},
    "base": {"features": (16, 32, 64, 96, 128)},
}


def build_segmenter(config: dict[str, Any] | str = "small") -> SegmenterNet:
    """A ``SegmenterNet`` from a variant name or a ``config`` dict (``SegmenterNet.config``)."""
    if isinstance(config, str):
        if config not in SEGMENTER_VARIANTS:
            raise ValueError(
                f"unknown segmenter variant {config!r}; choose from {', '.join(SEGMENTER_VARIANTS)}"
            )
        config = SEGMENTER_VARIANTS[config]
    return SegmenterNet(**config)
