"""Importing the study's Lightning checkpoint: exact key mapping, clear errors, ONNX parity
with a forward pass written here in plain functional torch from the checkpoint's tensors."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from nets_reference import timm_resnet_d_keys
from typer.testing import CliRunner

from ecgscreen.cli import app
from ecgscreen.export.mtecg import import_mtecg, load_mtecg, read_transform

SIZE = 384
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def study_state_dict(seed: int = 0) -> OrderedDict:
    """What the study's LightningModule saves: ``model.*`` (timm resnet34d, fc -> 512) + heads."""
    gen = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in timm_resnet_d_keys((3, 4, 6, 3), num_classes=512).items():
        name = key.rsplit(".", 1)[-1]
        if name == "num_batches_tracked":
            value = torch.tensor(1000)
        elif name == "running_mean":
            value = 0.1 * torch.randn(shape, generator=gen)
        elif name == "running_var":
            value = 0.5 + torch.rand(shape, generator=gen)
        elif len(shape) == 1 and not key.startswith("fc."):  # norm weight / bias
            value = (
                (0.5 + 0.5 * torch.rand(shape, generator=gen))
                if name == "weight"
                else 0.1 * torch.randn(shape, generator=gen)
            )
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 512
            value = torch.randn(shape, generator=gen) * (1.0 / fan_in) ** 0.5
        state[f"model.{key}"] = value
    for head in ("scar_head", "lvef_head"):
        state[f"{head}.weight"] = torch.randn(2, 512, generator=gen) * 0.1
        state[f"{head}.bias"] = torch.randn(2, generator=gen) * 0.1
    return state


def write_study_folder(folder, state=None, transform=None, configs=None):
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "epoch": 23,
        "global_step": 8832,
        "pytorch-lightning_version": "2.0.9",
        "state_dict": study_state_dict() if state is None else state,
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 23}}}},
        "callbacks": {"ModelCheckpoint": {"monitor": "val_loss", "best_model_score": torch.tensor(0.41)}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
        "lr_schedulers": [],
        "hyper_parameters": {"backbone": "resnet34d", "learning_rate": 1e-4, "loss_weights": [0.7, 0.3]},
    }
    torch.save(ckpt, folder / "model.ckpt")
    configs = configs or {"backbone": "resnet34d", "image_size": SIZE, "num_classes": 2, "batch_size": 32}
    (folder / "configs.json").write_text(json.dumps(configs))
    (folder / "transform.json").write_text(json.dumps(transform or {**IMAGENET, "resize": SIZE}))
    return folder


def reference_forward(sd, x):
    """resnet34d -> fc -> ReLU -> heads, functional, from the checkpoint's own tensors."""

    def bn(t, p):
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            training=False, eps=1e-5)  # fmt: skip

    def conv(t, p, stride=1):
        w = sd[f"{p}.weight"]
        return F.conv2d(t, w, stride=stride, padding=w.shape[-1] // 2)

    x = F.relu(bn(conv(x, "model.conv1.0", 2), "model.conv1.1"))
    x = F.relu(bn(conv(x, "model.conv1.3"), "model.conv1.4"))
    x = F.relu(bn(conv(x, "model.conv1.6"), "model.bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for stage, n_blocks in enumerate((3, 4, 6, 3)):
        for b in range(n_blocks):
            p = f"model.layer{stage + 1}.{b}"
            stride = 2 if stage > 0 and b == 0 else 1
            out = F.relu(bn(conv(x, f"{p}.conv1", stride), f"{p}.bn1"))
            out = bn(conv(out, f"{p}.conv2"), f"{p}.bn2")
            if f"{p}.downsample.1.weight" in sd:
                short = (
                    F.avg_pool2d(x, 2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else x
                )
                short = bn(conv(short, f"{p}.downsample.1"), f"{p}.downsample.2")
            else:
                short = x
            x = F.relu(out + short)
    embedding = F.relu(F.linear(x.mean(dim=(2, 3)), sd["model.fc.weight"], sd["model.fc.bias"]))
    probs = [
        F.softmax(F.linear(embedding, sd[f"{h}.weight"], sd[f"{h}.bias"]), 1)[:, 1]
        for h in ("scar_head", "lvef_head")
    ]
    return torch.stack(probs, 1), embedding


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_study_folder(tmp_path_factory.mktemp("mtecg") / "checkpoint")


def test_imported_onnx_matches_the_reference_forward(study, tmp_path):
    result = CliRunner().invoke(app, ["import-mtecg", str(study), "--repository", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "ecg_multitask"
    card = json.loads((folder / "model_card.json").read_text())
    assert card["architecture"]["backbone"] == "resnet34d" and card["input_size"] == SIZE
    assert card["source"]["kind"] == "mtecg-checkpoint" and card["source"]["epoch"] == 23
    assert card["architecture"]["normalisation_adapter_in_graph"] is False
    assert card["clinical"] is None and not (folder / "fusion.onnx").exists()
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    scar, lvef, _, embedding, cam = session.run(None, {"image": x.numpy()})
    state = torch.load(study / "model.ckpt", weights_only=True)["state_dict"]
    with torch.no_grad():
        probs, ref_embedding = reference_forward(state, x)
    assert np.abs(np.c_[scar, lvef] - probs.numpy()).max() <= 1e-4
    assert 0.01 < float(probs.min()) and float(probs.max()) < 0.99  # not saturated: the check has teeth
    assert np.allclose(embedding, ref_embedding.numpy(), atol=1e-3, rtol=1e-3)
    assert cam.shape == (2, 2, SIZE // 32, SIZE // 32)


def test_another_normalisation_is_converted_in_the_graph(tmp_path):
    half = {"mean": [127.5] * 3, "std": [127.5] * 3, "max_pixel_value": 255.0}  # albumentations units
    transform = {"transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "Resize", "height": SIZE, "width": SIZE},
        {"__class_fullname__": "Normalize", **half}]}}  # fmt: skip
    folder = write_study_folder(tmp_path / "ck", transform=transform)
    assert read_transform(folder / "transform.json") == {"mean": [0.5] * 3, "std": [0.5] * 3, "size": SIZE}
    card = import_mtecg(folder, tmp_path / "repo")
    assert card.architecture.normalisation_adapter_in_graph is True
    assert card.mean == pytest.approx(IMAGENET["mean"])  # the served input stays ImageNet-normalised
    session = ort.InferenceSession(
        str(tmp_path / "repo/ecg_multitask/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    gray = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3)).expand(1, 3, SIZE, SIZE)
    served = (gray - torch.tensor(IMAGENET["mean"]).view(1, 3, 1, 1)) / torch.tensor(IMAGENET["std"]).view(
        1, 3, 1, 1
    )
    scar, lvef = session.run(["scar_probability", "lvef_probability"], {"image": served.numpy()})
    with torch.no_grad():
        probs, _ = reference_forward(
            torch.load(folder / "model.ckpt", weights_only=True)["state_dict"], (gray - 0.5) / 0.5
        )
    assert np.abs(np.c_[scar, lvef] - probs.numpy()).max() <= 1e-4


def test_mismatches_are_reported_in_full(tmp_path):
    state = study_state_dict()
    del state["model.layer3.2.conv1.weight"]
    state["model.layer1.0.bn1.weight"] = torch.ones(32)
    state["model.head.weight"] = torch.zeros(1)
    state["ema.decay"] = torch.tensor(0.99)
    folder = write_study_folder(tmp_path / "bad", state=state)
    with pytest.raises(ValueError) as info:
        load_mtecg(folder)
    message = str(info.value)
    for fragment in ("missing keys: model.layer3.2.conv1.weight", "ema.decay", "model.head.weight",
                     "model.layer1.0.bn1.weight (32,) != (64,)"):  # fmt: skip
        assert fragment in message


def test_configs_and_files_are_checked(tmp_path):
    with pytest.raises(ValueError, match="resnet101x"):
        load_mtecg(write_study_folder(tmp_path / "a", configs={"backbone": "resnet101x", "image_size": SIZE}))
    with pytest.raises(ValueError, match="num_classes 3"):
        load_mtecg(write_study_folder(tmp_path / "b", configs={"backbone": "resnet34d", "num_classes": 3}))
    with pytest.raises(ValueError, match="disagree"):
        load_mtecg(write_study_folder(tmp_path / "c", transform={**IMAGENET, "resize": 512}))
    with pytest.raises(ValueError, match="no checkpoint file"):
        load_mtecg(tmp_path / "empty")
    heads_only = {k: v for k, v in study_state_dict().items() if not k.startswith("lvef_head")}
    run, info = load_mtecg(write_study_folder(tmp_path / "d", state=heads_only))
    assert run.model.tasks == ("scar",) and info["pytorch_lightning_version"] == "2.0.9"


def test_untrusted_pickles_are_refused(tmp_path):
    folder = write_study_folder(tmp_path / "p")
    ckpt = torch.load(folder / "model.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["transform"] = np.random.default_rng(0)  # an arbitrary Python object
    torch.save(ckpt, folder / "model.ckpt")
    with pytest.raises(ValueError, match="--trust-pickle"):
        load_mtecg(folder)
    run, _ = load_mtecg(folder, trust_pickle=True)
    assert run.model.config["backbone"] == "resnet34d"
