"""The ONNX contract: names, shapes, dynamic batch, parity with torch, in-graph Grad-CAM++."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from nets_reference import pearson, randomize, reference_gradcam_pp
from typer.testing import CliRunner

from ecgscreen.card import ModelCard
from ecgscreen.cli import app
from ecgscreen.contract import INTENDED_USE
from ecgscreen.export.onnx_export import export_model, export_run
from ecgscreen.imaging.canonical import to_model_input
from ecgscreen.nets.multitask import ClinicalFusion, MultiTaskNet
from ecgscreen.training.checkpoint import RunModel

SIZE = 128


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def random_export(tmp_path_factory):
    """A random-weights multi-task model with a fusion head, exported."""
    model = randomize(MultiTaskNet("resnet18d_tiny", image_size=SIZE), 5)
    fusion = ClinicalFusion()
    fusion.set_statistics(torch.tensor([[50.0, 1, 0, 1, 0, 1], [70.0, 0, 1, 1, 1, 0], [64.0, 0, 0, 0, 1, 1]]))
    with torch.no_grad():
        for p in fusion.parameters():
            p.add_(0.3 * torch.randn_like(p))
    fusion.eval()
    repository = tmp_path_factory.mktemp("repo")
    card = export_model(RunModel(model, fusion, {}), repository)
    return model, fusion, repository / "ecg_multitask", card


def test_image_onnx_contract(random_export):
    _, _, folder, _ = random_export
    proto = onnx.load(str(folder / "1" / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [(i.name, dims(i)) for i in proto.graph.input] == [("canonical", ["batch", SIZE, SIZE])]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    h = SIZE // 32
    assert [(o.name, dims(o)) for o in proto.graph.output] == [
        ("scar_probability", ["batch", 1]),
        ("lvef_probability", ["batch", 1]),
        ("logits", ["batch", 4]),
        ("embedding", ["batch", 512]),
        ("cam", ["batch", 2, h, h]),
    ]
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in proto.graph.output)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_matches_torch_on_fresh_inputs(random_export, batch):
    model, _, folder, _ = random_export
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    canonical = torch.randint(0, 256, (batch, SIZE, SIZE), dtype=torch.uint8,
                              generator=torch.Generator().manual_seed(100 + batch))  # fmt: skip
    scar, lvef, logits, embedding, cam = session.run(None, {"canonical": canonical.numpy()})
    # the graph's own normalisation is the one training uses
    x = torch.from_numpy(np.stack([to_model_input(c) for c in canonical.numpy()]))
    with torch.no_grad():
        ref_logits = model(x)
        ref_embedding = model.forward_head(model.forward_features(x), pre_logits=True)
    ref_probs = torch.softmax(ref_logits.view(batch, 2, 2), dim=2)[:, :, 1].numpy()
    assert scar.shape == lvef.shape == (batch, 1) and cam.shape == (batch, 2, SIZE // 32, SIZE // 32)
    assert np.abs(scar[:, 0] - ref_probs[:, 0]).max() <= 1e-4
    assert np.abs(lvef[:, 0] - ref_probs[:, 1]).max() <= 1e-4
    assert np.allclose(logits, ref_logits.numpy(), atol=1e-4, rtol=1e-4)
    assert np.allclose(embedding, ref_embedding.numpy(), atol=1e-4, rtol=1e-4)
    reference = reference_gradcam_pp(model, x)
    compared = 0
    for b in range(batch):
        for t in range(2):
            if float(reference[b, t].std()) > 1e-6:
                assert pearson(torch.from_numpy(cam[b, t]), reference[b, t]) >= 0.99
                compared += 1
    assert compared >= batch  # at least half the maps carry structure


@pytest.mark.parametrize("batch", [1, 5])
def test_fusion_onnx_contract_and_parity(random_export, batch):
    _, fusion, folder, card = random_export
    proto = onnx.load(str(folder / "fusion.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert [(i.name, dims(i)) for i in proto.graph.input] == [
        ("embedding", ["batch", 512]),
        ("clinical", ["batch", 6]),
    ]
    assert [(o.name, dims(o)) for o in proto.graph.output] == [
        ("scar_probability", ["batch", 1]),
        ("lvef_probability", ["batch", 1]),
    ]
    gen = torch.Generator().manual_seed(batch)
    embedding = torch.rand(batch, 512, generator=gen)
    clinical = torch.cat(
        [torch.randint(30, 90, (batch, 1), generator=gen), torch.randint(0, 2, (batch, 5), generator=gen)], 1
    ).float()
    session = ort.InferenceSession(str(folder / "fusion.onnx"), providers=["CPUExecutionProvider"])
    scar, lvef = session.run(None, {"embedding": embedding.numpy(), "clinical": clinical.numpy()})
    with torch.no_grad():
        ref = torch.softmax(fusion(embedding, clinical).view(batch, 2, 2), dim=2)[:, :, 1].numpy()
    assert np.abs(np.c_[scar, lvef] - ref).max() <= 1e-4
    means = card.clinical.imputation_means
    assert list(means) == ["age", "female_gender", "dm", "ht", "smoke", "dlp"]
    assert means["age"] == pytest.approx(184 / 3) and means["dm"] == pytest.approx(1 / 3)


def test_model_card_of_an_unevaluated_model(random_export):
    _, _, folder, card = random_export
    assert ModelCard.load(folder) == card
    assert card.name == "ecg_multitask" and card.version == "1" and card.intended_use == INTENDED_USE
    assert card.input_size == SIZE and card.tasks == ["scar", "lvef"]
    assert card.mean == pytest.approx([0.485, 0.456, 0.406]) and card.std == pytest.approx(
        [0.229, 0.224, 0.225]
    )
    assert card.thresholds == {"scar": 0.5, "lvef": 0.5} and "not evaluated" in card.threshold_source
    assert card.onnx.sha256 == hashlib.sha256((folder / "1" / "model.onnx").read_bytes()).hexdigest()
    assert card.fusion_onnx.sha256 == hashlib.sha256((folder / "fusion.onnx").read_bytes()).hexdigest()
    assert card.metrics is None and card.outputs["cam"].order == ["scar", "lvef"]


def test_export_computes_the_readiness_canary_through_the_onnx_and_the_intake(random_export, tmp_path):
    from ecgscreen.export.canary import DEFAULT_SOURCE
    from ecgscreen.imaging.pipeline import preprocess

    _, _, folder, card = random_export
    canary = card.canary
    assert (folder / canary.file).read_bytes() == DEFAULT_SOURCE.read_bytes() == canary.read(folder)
    canonical = preprocess(DEFAULT_SOURCE.read_bytes(), size=SIZE).canonical[
        None
    ]  # the network's UINT8 input
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    answers = session.run(["scar_probability", "lvef_probability"], {"canonical": canonical})
    assert canary.expected == pytest.approx(
        {"scar": float(answers[0][0, 0]), "lvef": float(answers[1][0, 0])}, abs=1e-6
    )
    assert canary.tolerance == 0.02 and card.onnx.sha256[:12] in canary.computed_with


def test_refresh_canary_recomputes_the_expected_answer_of_a_repository(random_export, tmp_path):
    _, _, folder, card = random_export
    repository = tmp_path / "repo"
    shutil.copytree(folder, repository / "ecg_multitask")
    stale = card.model_copy(deep=True)
    stale.canary.expected = {t: 0.5 for t in stale.canary.expected}
    stale.save(repository / "ecg_multitask")
    result = CliRunner().invoke(app, ["export", "--refresh-canary", "--repository", str(repository)])
    assert result.exit_code == 0, result.output
    assert ModelCard.load(repository / "ecg_multitask").canary.expected == card.canary.expected
    assert "readiness canary" in result.output
    refused = CliRunner().invoke(app, ["export", "--repository", str(repository)])
    assert refused.exit_code != 0 and "--refresh-canary" in refused.output


def test_single_task_exports_only_its_outputs_and_drops_a_stale_fusion(random_export, tmp_path):
    _, _, folder, _ = random_export
    (tmp_path / "ecg_multitask").mkdir()
    (tmp_path / "ecg_multitask" / "fusion.onnx").write_bytes((folder / "fusion.onnx").read_bytes())
    model = randomize(MultiTaskNet("resnet18d_tiny", tasks=["lvef"], image_size=64), 1)
    card = export_model(RunModel(model, None, {}), tmp_path)
    proto = onnx.load(str(tmp_path / "ecg_multitask" / "1" / "model.onnx"))
    assert [(o.name, dims(o)) for o in proto.graph.output] == [
        ("lvef_probability", ["batch", 1]), ("logits", ["batch", 2]), ("embedding", ["batch", 512]), ("cam", ["batch", 1, 2, 2]),
    ]  # fmt: skip
    assert not (tmp_path / "ecg_multitask" / "fusion.onnx").exists() and card.clinical is None


def test_export_of_a_run_carries_its_evaluation(tiny_run, tmp_path, signal_dataset):
    result = CliRunner().invoke(app, ["export", "--run", str(tiny_run), "--repository", str(tmp_path),
                                      "--int8-calibration", "8", "--int8-fresh", "20"])  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "ecg_multitask" / "model_card.json").read_text())
    # the INT8 variant was made and judged (kept or refused: the file is there only when kept)
    int8 = card["int8"]
    assert (
        int8["n_fresh"] == 20
        and int8["n_calibration"] + int8["n_held_out"] <= 8
        and "INT8 variant" in result.output
    )
    assert (tmp_path / "ecg_multitask" / int8["file"]).is_file() == int8["passed"]
    best = torch.load(tiny_run / "best.pt", weights_only=True)
    assert (
        card["thresholds"] == pytest.approx(best["thresholds"]) and "validation" in card["threshold_source"]
    )
    assert card["population_average"] == pytest.approx(best["population_average"])
    assert card["clinical"]["fused_thresholds"] == pytest.approx(best["fused_thresholds"])
    test = json.loads((tiny_run / "eval" / "test" / "metrics.json").read_text())
    assert card["metrics"]["split"] == "test"
    assert card["metrics"]["scar"]["auc_ci95"] == test["scar"]["auc_ci95"]
    assert set(card["metrics"]["fused"]) == {"scar", "lvef"}
    labels_sha = hashlib.sha256((signal_dataset / "labels.csv").read_bytes()).hexdigest()
    assert card["training_data"]["labels_sha256"] == labels_sha
    assert card["architecture"]["backbone"] == "resnet18d_tiny" and card["source"]["kind"] == "ecgscreen-run"
    assert "created" in card and card["intended_use"] == "Research use only. Not for diagnosis."


def test_the_demo_variant_at_384_fits_the_size_budget(tmp_path):
    model = MultiTaskNet("resnet18d_tiny", image_size=384).eval()
    card = export_model(RunModel(model, None, {}), tmp_path)
    assert card.onnx.bytes <= 25 * 1024 * 1024
    assert card.outputs["cam"].shape == [-1, 2, 12, 12]
    session = ort.InferenceSession(
        str(tmp_path / "ecg_multitask" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert session.run(["cam"], {"canonical": np.zeros((1, 384, 384), np.uint8)})[0].shape == (1, 2, 12, 12)
    with pytest.raises(ValueError, match="nowhere"):
        export_run(tmp_path / "nowhere", tmp_path)
