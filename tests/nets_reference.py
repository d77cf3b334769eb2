"""Independent references for the network tests: random weights, Grad-CAM++ by autograd, and
timm's ResNet-D state-dict layout written from timm's rules (not from ``ecgscreen.nets``)."""

from __future__ import annotations

import numpy as np
import torch

from ecgscreen.nets.cam import normalize_maps
from ecgscreen.nets.multitask import MultiTaskNet

__all__ = ["randomize", "reference_gradcam_pp", "pearson", "timm_resnet_d_keys"]


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, norms included, so blocks are not the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif "bn" in name or "downsample.2" in name or "conv1.1" in name or "conv1.4" in name:
                p.copy_(
                    torch.rand(p.shape, generator=gen) * 0.5 + (0.5 if name.endswith("weight") else -0.25)
                )
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return model.eval()


def reference_gradcam_pp(model: MultiTaskNet, image: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ as in the paper / pytorch-grad-cam: hooks on the last block, autograd grads,
    second- and third-order terms of exp(score) as powers of the first derivative."""
    store = {}
    hook = model.backbone.layer4.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        logits = model(image)
    finally:
        hook.remove()
    a = store["a"]
    maps = []
    for i, _ in enumerate(model.tasks):
        (grads,) = torch.autograd.grad(logits[:, 2 * i + 1].sum(), a, retain_graph=True)
        g2, g3 = grads**2, grads**3
        denominator = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
        alpha = torch.where(grads != 0, g2 / torch.where(denominator != 0, denominator, 1), 0)
        weights = (alpha * torch.relu(grads)).sum(dim=(2, 3))
        cam = torch.relu((weights[:, :, None, None] * a).sum(dim=1))
        maps.append(normalize_maps(cam.detach()))
    return torch.stack(maps, dim=1)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


def timm_resnet_d_keys(
    layers, bottleneck=False, channels=(64, 128, 256, 512), stem_width=32, num_classes=1000
) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of timm's ``ResNet(stem_type='deep', avg_down=True)``.

    Written from timm's structure rules, independently of ``ecgscreen.nets.resnet``.
    """
    keys: dict[str, tuple[int, ...]] = {}

    def conv(name, cout, cin, k):
        keys[f"{name}.weight"] = (cout, cin, k, k)

    def bn(name, c):
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{name}.{suffix}"] = (c,)
        keys[f"{name}.num_batches_tracked"] = ()

    conv("conv1.0", stem_width, 3, 3)
    bn("conv1.1", stem_width)
    conv("conv1.3", stem_width, stem_width, 3)
    bn("conv1.4", stem_width)
    conv("conv1.6", 2 * stem_width, stem_width, 3)
    bn("bn1", 2 * stem_width)
    inplanes, expansion = 2 * stem_width, 4 if bottleneck else 1
    for stage, (n_blocks, planes) in enumerate(zip(layers, channels, strict=True)):
        for b in range(n_blocks):
            p, cin = f"layer{stage + 1}.{b}", inplanes if b == 0 else planes * expansion
            if bottleneck:
                conv(f"{p}.conv1", planes, cin, 1)
                conv(f"{p}.conv2", planes, planes, 3)
                conv(f"{p}.conv3", planes * 4, planes, 1)
                for i, c in ((1, planes), (2, planes), (3, planes * 4)):
                    bn(f"{p}.bn{i}", c)
            else:
                conv(f"{p}.conv1", planes, cin, 3)
                conv(f"{p}.conv2", planes, planes, 3)
                bn(f"{p}.bn1", planes)
                bn(f"{p}.bn2", planes)
            if b == 0 and (stage > 0 or inplanes != planes * expansion):
                conv(f"{p}.downsample.1", planes * expansion, inplanes, 1)  # .0 is the AvgPool
                bn(f"{p}.downsample.2", planes * expansion)
        inplanes = planes * expansion
    keys["fc.weight"] = (num_classes, inplanes)
    keys["fc.bias"] = (num_classes,)
    return keys
