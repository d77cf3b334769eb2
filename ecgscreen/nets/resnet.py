"""ResNet-D in plain torch, parameter-for-parameter compatible with timm's ``resnet*d``.

Same layout as ``timm/models/resnet.py``: blocks, then the model, then default configs, then
one small builder per variant. A variant is a dict of arguments, not a subclass. Parameter
names are timm's (``conv1.0/1/3/4/6``, ``bn1``, ``layer1..4``, ``downsample.1/2``, ``fc``), so
a timm ``resnet34d`` state dict loads unchanged with ``strict=True``.

ResNet-D (Bag of Tricks, He et al. 2019): a deep stem of three 3x3 convolutions (width
``stem_width, stem_width, 2 * stem_width``) instead of one 7x7, and shortcuts that downsample
with a 2x2 average pool before a 1x1 convolution instead of a strided 1x1 convolution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..contract import CANONICAL_SIZE, FEATURE_STRIDE, IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "MODEL_ARGS",
    "default_cfgs",
    "create_model",
    "list_models",
    "resnet18d",
    "resnet34d",
    "resnet50d",
    "resnet18d_tiny",
]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act2(x + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, with a residual connection (ResNet-50+)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        return self.act3(x + shortcut)


def _downsample_avg(inplanes: int, outplanes: int, stride: int) -> nn.Sequential:
    """ResNet-D shortcut: average pool (identity at stride 1), 1x1 conv, norm (timm's indices)."""
    pool: nn.Module = (
        nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride != 1 else nn.Identity()
    )
    return nn.Sequential(pool, nn.Conv2d(inplanes, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes))


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """ResNet with a deep stem and average-pool shortcuts (the ``d`` variants).

    Shape contract: ``(B, in_chans, S, S)`` -> ``forward_features`` ``(B, num_features, S/32,
    S/32)`` -> ``forward_head`` ``(B, num_classes)`` (global average pool, then ``fc``; with
    ``num_classes=0`` the pooled features).

    Args:
        block: ``"basic"`` or ``"bottleneck"``.
        layers: blocks per stage.
        channels: planes per stage (before the block's expansion).
        stem_width: width of the first two stem convolutions; the stem ends at twice that.
        num_classes: outputs of ``fc`` (the study uses 512: the embedding).
        in_chans: input channels.
        zero_init_last: zero the last norm of each block (timm's default), so every block
            starts as the identity.

    Raises:
        ValueError: unknown ``block``, or ``layers`` and ``channels`` of different length.
    """

    def __init__(
        self,
        block: str = "basic",
        layers: tuple[int, ...] = (3, 4, 6, 3),
        channels: tuple[int, ...] = (64, 128, 256, 512),
        stem_width: int = 32,
        num_classes: int = 1000,
        in_chans: int = 3,
        zero_init_last: bool = True,
    ):
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"unknown block {block!r}; expected one of {', '.join(_BLOCKS)}")
        if len(layers) != len(channels) or not layers:
            raise ValueError(f"layers {layers} and channels {channels} must have the same, non-zero length")
        block_cls = _BLOCKS[block]
        inplanes = stem_width * 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, stem_width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, inplanes, 3, padding=1, bias=False),
        )
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (n_blocks, planes) in enumerate(zip(layers, channels, strict=True)):
            stride = 1 if i == 0 else 2
            outplanes = planes * block_cls.expansion
            down = (
                _downsample_avg(inplanes, outplanes, stride) if stride != 1 or inplanes != outplanes else None
            )
            blocks = [block_cls(inplanes, planes, stride, down)]
            blocks += [block_cls(outplanes, planes) for _ in range(1, n_blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = outplanes
        self.num_stages = len(layers)
        self.num_features = inplanes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.num_classes = num_classes
        self.fc: nn.Module = nn.Linear(inplanes, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    m.zero_init_last()

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# -- default configs: what a variant expects as input, and where its first / last layers are
def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "input_size": (3, CANONICAL_SIZE, CANONICAL_SIZE),  # the study's input size
        "pool_size": (CANONICAL_SIZE // FEATURE_STRIDE,) * 2,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "first_conv": "conv1.0",
        "classifier": "fc",
        **kwargs,
    }


MODEL_ARGS: dict[str, dict[str, Any]] = {
    "resnet18d": dict(block="basic", layers=(2, 2, 2, 2), stem_width=32),
    "resnet34d": dict(block="basic", layers=(3, 4, 6, 3), stem_width=32),
    "resnet50d": dict(block="bottleneck", layers=(3, 4, 6, 3), stem_width=32),
    # The CPU-trainable demo: resnet18d's depth at a quarter of its widths. 0.7 M parameters
    # (with the 512-d fc); on 2 CPU cores at the canonical size it trains ~10x faster than resnet18d.
    "resnet18d_tiny": dict(block="basic", layers=(2, 2, 2, 2), channels=(16, 32, 64, 128), stem_width=8),
}
default_cfgs: dict[str, dict[str, Any]] = {name: _cfg() for name in MODEL_ARGS}


def list_models() -> list[str]:
    return sorted(MODEL_ARGS)


def create_model(name: str, **kwargs: Any) -> ResNet:
    """Build the registered variant ``name``; ``kwargs`` override its arguments."""
    if name not in MODEL_ARGS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(list_models())}")
    model = ResNet(**{**MODEL_ARGS[name], **kwargs})
    model.default_cfg = default_cfgs[name]
    return model


def _builder(name: str) -> Callable[..., ResNet]:
    def build(**kwargs: Any) -> ResNet:
        return create_model(name, **kwargs)

    build.__name__ = name
    build.__doc__ = f"{name}: {MODEL_ARGS[name]}"
    return build


resnet18d = _builder("resnet18d")
resnet34d = _builder("resnet34d")
resnet50d = _builder("resnet50d")
resnet18d_tiny = _builder("resnet18d_tiny")
