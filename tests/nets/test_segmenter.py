"""The page segmenter's network: any page size in, one logit per class and pixel out."""

from __future__ import annotations

import pytest
import torch

from ecgscreen.contract import SEGMENTER_CLASSES
from ecgscreen.nets.segmenter import SEGMENTER_VARIANTS, SegmenterNet, build_segmenter


@pytest.mark.parametrize("size", [(32, 48), (37, 61), (16, 16)])
def test_logits_have_the_input_size_and_one_channel_per_class(size):
    model = build_segmenter("tiny").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, len(SEGMENTER_CLASSES), *size)


def test_normalise_takes_uint8_pages_channels_last():
    model = build_segmenter("tiny")
    pages = torch.full((1, 8, 10, 3), 255, dtype=torch.uint8)
    x = model.normalise(pages)
    assert x.shape == (1, 3, 8, 10) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, (1.0 - 0.5) / 0.25))


def test_variants_build_and_record_their_config():
    for name, args in SEGMENTER_VARIANTS.items():
        model = build_segmenter(name)
        assert model.config["features"] == list(args["features"])
        assert SegmenterNet(**model.config).config == model.config
    small = build_segmenter("small")
    assert sum(p.numel() for p in small.parameters()) < 2_500_000  # ONNX well under 10 MB


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"features": (8,)}, "at least two levels"),
        ({"features": (8, 0)}, "positive"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegmenterNet(**kwargs)


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="'huge'"):
        build_segmenter("huge")
