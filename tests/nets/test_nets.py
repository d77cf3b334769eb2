"""ResNet-D backbones load timm's weights unchanged; the multi-task and fusion nets keep shapes."""

from __future__ import annotations

import pytest
import torch
from nets_reference import timm_resnet_d_keys

from ecgscreen.card import impute
from ecgscreen.contract import CLINICAL_FEATURES
from ecgscreen.nets.multitask import ClinicalFusion, MultiTaskNet, build_model
from ecgscreen.nets.resnet import MODEL_ARGS, create_model, default_cfgs, list_models

TIMM = {
    "resnet18d": dict(layers=(2, 2, 2, 2)),
    "resnet34d": dict(layers=(3, 4, 6, 3)),
    "resnet50d": dict(layers=(3, 4, 6, 3), bottleneck=True),
}
# parameter counts timm publishes for these models (1000 classes)
TIMM_PARAMS_M = {"resnet18d": 11.71, "resnet34d": 21.82, "resnet50d": 25.58}


@pytest.mark.parametrize("name", sorted(TIMM))
def test_state_dict_keys_and_shapes_are_timms(name):
    model = create_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = timm_resnet_d_keys(**TIMM[name])
    assert sorted(set(ours) ^ set(expected)) == []
    assert ours == expected
    n_params = sum(p.numel() for p in model.parameters())
    assert round(n_params / 1e6, 2) == TIMM_PARAMS_M[name]


def test_a_timm_resnet34d_state_dict_loads_strictly_and_is_used():
    expected = timm_resnet_d_keys(**TIMM["resnet34d"], num_classes=512)
    gen = torch.Generator().manual_seed(0)
    state = {
        k: torch.tensor(7) if not shape else torch.rand(shape, generator=gen) * 0.1 + 0.5
        for k, shape in expected.items()
    }
    model = create_model("resnet34d", num_classes=512)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])
    assert torch.equal(model.layer2[0].downsample[1].weight, state["layer2.0.downsample.1.weight"])
    assert int(model.bn1.num_batches_tracked) == 7
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.load_state_dict({**state, "head.fc.weight": torch.zeros(1)}, strict=True)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_matches_its_config(name):
    model = create_model(name, num_classes=512).eval()
    cfg = default_cfgs[name]
    first = model.get_submodule(cfg["first_conv"])
    assert first.in_channels == cfg["input_size"][0]
    assert model.get_submodule(cfg["classifier"]).in_features == model.num_features
    assert cfg["pool_size"] == tuple(s // 32 for s in cfg["input_size"][1:])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features, 2, 2)
        assert torch.allclose(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)


def test_the_demo_variant_is_small():
    tiny = create_model("resnet18d_tiny", num_classes=512)
    n_params = sum(p.numel() for p in tiny.parameters())
    assert n_params < 1_000_000  # fp32 ONNX well under 25 MB
    assert MODEL_ARGS["resnet18d_tiny"]["block"] == "basic"


def test_unknown_names_raise_with_the_name():
    with pytest.raises(ValueError, match="resnet99"):
        create_model("resnet99")
    with pytest.raises(ValueError, match="'wide'"):
        create_model("resnet18d", block="wide")
    with pytest.raises(ValueError, match=r"tasks \['qt'\]"):
        MultiTaskNet("resnet18d_tiny", tasks=["qt"])
    with pytest.raises(ValueError, match="100"):
        MultiTaskNet("resnet18d_tiny", image_size=100)


@pytest.mark.parametrize("tasks", [("scar", "lvef"), ("scar",), ("lvef",), ("lvef", "scar")])
def test_multitask_shapes_and_head_names(tasks):
    model = MultiTaskNet("resnet18d_tiny", tasks=tasks, image_size=64).eval()
    assert model.tasks == tuple(t for t in ("scar", "lvef") if t in tasks)
    names = {k.split(".")[0] for k in model.state_dict()}
    assert names == {"backbone"} | {f"{t}_head" for t in tasks}
    assert model.backbone.fc.out_features == 512
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
        embedding = model.forward_head(model.forward_features(x), pre_logits=True)
    assert logits.shape == (3, 2 * len(tasks))
    assert embedding.shape == (3, 512) and (embedding >= 0).all()
    rebuilt = build_model(model.config)
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), logits)


def test_fusion_imputes_with_training_means_and_blends_binary_tokens():
    fusion = ClinicalFusion().eval()
    train = torch.tensor([[50.0, 1, 0, 1, 0, 1], [70.0, 0, 0, 1, float("nan"), 0], [60.0, 1, 1, 0, 1, 1]])
    fusion.set_statistics(train)
    assert torch.allclose(fusion.clinical_mean, torch.tensor([60.0, 2 / 3, 1 / 3, 2 / 3, 0.5, 2 / 3]))
    assert float(fusion.age_std) == pytest.approx(10.0)
    filled = torch.from_numpy(
        impute([[float("nan"), 1, float("nan"), 0, 0, 1]], fusion.clinical_mean.numpy())
    )
    assert filled[0, 0] == 60.0 and filled[0, 2] == pytest.approx(1 / 3) and filled[0, 1] == 1
    tokens = fusion.tokens(torch.tensor([[60.0, 0, 1, 0.5, 0, 0]]))
    e, f = fusion.binary_embed, fusion.feature_embed
    assert torch.allclose(tokens[0, 1], e[0, 0] + f[1]) and torch.allclose(tokens[0, 2], e[1, 1] + f[2])
    assert torch.allclose(tokens[0, 3], 0.5 * (e[2, 0] + e[2, 1]) + f[3])
    logits = fusion(torch.rand(4, 512), filled.repeat(4, 1))
    assert logits.shape == (4, 4)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        fusion.set_statistics(torch.zeros(3, 5))
    assert len(CLINICAL_FEATURES) == 6


def test_fusion_starts_as_the_image_model():
    model = MultiTaskNet("resnet18d_tiny", image_size=64).eval()
    fusion = ClinicalFusion().eval()
    fusion.init_from_image_heads(model)
    embedding = torch.rand(5, 512)
    clinical = torch.tensor([[55.0, 1, 0, 1, 1, 0]]).repeat(5, 1)
    with torch.no_grad():
        assert torch.allclose(fusion(embedding, clinical), model.logits(embedding), atol=1e-6)
