"""Importing the study's own model folders (``tests/fixtures/mtecg``, written by its code through
``scripts/make_mtecg_fixtures.py``): every variant imports, and the exported ONNX answers as the
study's forward (its TorchScript oracle) within 1e-5 in probability, on the canonical image
Triton produces and on random ones, with and without clinical features."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mtecg_oracles import (
    CLINICAL,
    DEFAULTS,
    FIXTURES,
    TOLERANCE,
    VARIANTS,
    as_rgb,
    canonical_images,
    is_clinical,
    onnx_session,
    oracle_record,
    study_forward,
)
from typer.testing import CliRunner

from ecgscreen.card import ModelCard
from ecgscreen.cli import app
from ecgscreen.export.mtecg import import_mtecg, load_mtecg, read_transform
from ecgscreen.export.triton_configs import sync_triton_configs
from ecgscreen.serving.triton import DEFAULT_REPOSITORY


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each variant imported through the CLI into its own repository (once per module)."""
    cache: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in cache:
            repo = tmp_path_factory.mktemp(variant)
            args = ["import-mtecg", str(FIXTURES / variant), "--repository", str(repo), "--no-int8"]
            if is_clinical(variant):
                args += ["--clinical-defaults", json.dumps(DEFAULTS)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
            cache[variant] = repo / "ecg_multitask"
        return cache[variant]

    return get


def test_the_fixtures_are_the_study_s_variants():
    classes = {v: oracle_record(v)["model_class"] for v in VARIANTS}
    assert set(classes.values()) == {
        "MultiTaskModel",
        "SingleTaskModel",
        "MultiTaskClinicalCNNModel",
        "SingleTaskClinicalCNNModel",
    }
    configs = {oracle_record(v)["study_config"] for v in VARIANTS}
    assert {f"scripts/configs/{n}.json" for n in ("single-task-scar", "single-task-lvef", "multi-task",
            "multi-task-old-format", "multi-task-transferred", "multi-task-clinical",
            "single-task-scar-clinical", "single-task-lvef-clinical")} <= configs  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_imported_onnx_answers_as_the_study(variant, imported):
    record = oracle_record(variant)
    folder = imported(variant)
    card = json.loads((folder / "model_card.json").read_text())
    tasks = record["tasks"]
    assert card["tasks"] == tasks and card["source"]["study_class"] == record["model_class"]
    configs = json.loads((FIXTURES / variant / "configs.json").read_text())
    ignored = {  # training buffers, and the single-task clinical model's unused image head
        "MultiTaskModel": ["lvef_loss_fn.weight", "scar_loss_fn.weight"],
        "MultiTaskClinicalCNNModel": ["lvef_loss_fn.weight", "scar_loss_fn.weight"],
        "SingleTaskModel": [],
        "SingleTaskClinicalCNNModel": ["head.bias", "head.weight"]
        if configs["bias_head"]
        else ["head.weight"],
    }
    assert card["source"]["ignored_keys"] == ignored[record["model_class"]]
    transform = read_transform(FIXTURES / variant / "transform.json")
    served = canonical_images()  # what ecg_preprocess hands the network
    rgb = as_rgb(served)
    session = onnx_session(folder / "1" / "model.onnx")
    outputs = [f"{t}_probability" for t in tasks]
    assert [o.name for o in session.get_outputs()] == [*outputs, "logits", "embedding", "cam"]
    *probabilities, embedding = session.run([*outputs, "embedding"], {"canonical": served})
    image_only = np.concatenate(probabilities, axis=1)

    if not is_clinical(variant):
        expected = study_forward(variant, rgb, None, transform)
        assert np.abs(image_only - expected).max() <= TOLERANCE
        assert card["clinical"] is None and not (folder / "fusion.onnx").exists()
    else:
        fusion = onnx_session(folder / "fusion.onnx")
        fused = np.concatenate(fusion.run(outputs, {"embedding": embedding, "clinical": CLINICAL}), axis=1)
        expected = study_forward(variant, rgb, CLINICAL, transform)
        assert np.abs(fused - expected).max() <= TOLERANCE
        # Different clinical features move the study's answer: the comparison has teeth.
        assert np.abs(expected - study_forward(variant, rgb, CLINICAL[::-1].copy(), transform)).max() > 1e-4
        # model.onnx alone: the clinical model with every feature at its default.
        at_defaults = np.tile(np.array([list(DEFAULTS.values())], np.float32), (len(rgb), 1))
        assert np.abs(image_only - study_forward(variant, rgb, at_defaults, transform)).max() <= TOLERANCE
        assert card["clinical"]["imputation_means"] == {k: float(v) for k, v in DEFAULTS.items()}
        assert card["source"]["clinical"]["rnn_type"] == record["overrides"].get("rnn_type", "birnn")
    assert expected.std() > 1e-3  # different pictures, different answers
    # The oracle reproduces the probabilities the study's own code computed for canonical.png.
    for result in record["reference"]["results"]:
        profile = result["clinical"]
        row = None
        if profile is not None:
            row = np.array([[profile["age"] * 100] + [profile[k] for k in list(DEFAULTS)[1:]]], np.float32)
        got = study_forward(variant, rgb[:1], row, transform)[0]
        assert np.abs(got - [result["probability"][t] for t in tasks]).max() <= 1e-6


def test_single_task_models_say_which_task(tmp_path):
    run, info = load_mtecg(FIXTURES / "single-task-lvef")
    assert run.model.tasks == ("lvef",) and info["task_source"] == "hyper_parameters.task"
    # as published, the lvef clinical config trains scar: the checkpoint says so, and it is served so
    run, info = load_mtecg(FIXTURES / "single-task-lvef-clinical", clinical_defaults=DEFAULTS)
    assert run.model.tasks == ("scar",) and run.fusion.tasks == ("scar",)
    bare = shutil.copytree(FIXTURES / "single-task-scar", tmp_path / "bare")
    state = torch.load(bare / "model.ckpt", weights_only=True)["state_dict"]
    (bare / "model.ckpt").unlink()
    torch.save(state, bare / "weights.pt")
    with pytest.raises(ValueError, match="--task scar or --task lvef"):
        load_mtecg(bare)
    run, info = load_mtecg(bare, task="scar")
    assert (
        run.model.tasks == ("scar",) and info["format"] == "state_dict" and info["checkpoint"] == "weights.pt"
    )
    with pytest.raises(ValueError, match="heads for scar, lvef"):
        load_mtecg(FIXTURES / "multi-task", task="lvef")


def test_what_the_card_records(imported):
    card = json.loads((imported("multi-task") / "model_card.json").read_text())
    source = card["source"]
    assert source["format"] == "lightning" and source["precision"] == "16-mixed (GradScaler state)"
    assert source["backbone"] == {"name": "resnet34d", "channels": [2, 2, 4, 8], "stem_width": 1}
    assert source["fc_bias"] is False and card["architecture"]["embedding"] == "fc 8 -> 512, ReLU"
    card = json.loads((imported("multi-task-no-bias-fp32") / "model_card.json").read_text())
    assert card["source"]["precision"] is None and card["source"]["configs"]["bias_head"] is False
    card = json.loads((imported("multi-task-clinical-rnn-state-dict") / "model_card.json").read_text())
    assert card["source"]["format"] == "state_dict" and card["source"]["checkpoint"] == "model.pth"
    assert card["architecture"]["embedding"] == "fc 8 -> 512 (no ReLU)"


def copy_variant(tmp_path: Path, variant: str = "multi-task") -> Path:
    return shutil.copytree(FIXTURES / variant, tmp_path / variant)


def test_another_normalisation_is_done_in_the_graph(tmp_path):
    folder = copy_variant(tmp_path)
    spec = json.loads((folder / "transform.json").read_text())
    normalize = spec["transform"]["transforms"][1]
    normalize.update(mean=[127.5] * 3, std=[127.5] * 3)  # albumentations' pixel units
    (folder / "transform.json").write_text(json.dumps(spec))
    assert read_transform(folder / "transform.json") == {"mean": [0.5] * 3, "std": [0.5] * 3, "size": 384}
    card = import_mtecg(folder, tmp_path / "repo")
    assert card.mean == pytest.approx([0.5] * 3) and card.std == pytest.approx([0.5] * 3)  # in the graph
    assert card.inputs["canonical"].dtype == "UINT8"  # the served input is the canonical image still
    canonical = canonical_images()
    session = onnx_session(tmp_path / "repo/ecg_multitask/1/model.onnx")
    got = np.concatenate(session.run(None, {"canonical": canonical})[:2], axis=1)
    rgb = as_rgb(canonical)
    expected = study_forward("multi-task", rgb, None, {"mean": [0.5] * 3, "std": [0.5] * 3})
    assert np.abs(got - expected).max() <= TOLERANCE


def test_a_folder_that_is_none_of_these_says_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_mtecg(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"model.ckpt is missing \(the folder holds nothing\)"):
        load_mtecg(tmp_path / "empty")
    folder = copy_variant(tmp_path)
    (folder / "configs.json").unlink()
    with pytest.raises(ValueError, match="has no configs.json"):
        load_mtecg(folder)
    (folder / "model.ckpt").write_bytes(b"not a checkpoint")
    shutil.copy(FIXTURES / "multi-task" / "configs.json", folder)
    with pytest.raises(ValueError, match="is not a PyTorch checkpoint"):
        load_mtecg(folder)
    configs = json.loads((FIXTURES / "multi-task" / "configs.json").read_text())
    (folder / "configs.json").write_text(json.dumps({**configs, "backbone": "resnet101x"}))
    shutil.copy(FIXTURES / "multi-task" / "model.ckpt", folder)
    with pytest.raises(ValueError, match="backbone 'resnet101x' is not supported"):
        load_mtecg(folder)
    (folder / "configs.json").write_text(json.dumps({**configs, "backbone": "resnet18d"}))
    with pytest.raises(ValueError, match=r"says resnet18d .* holds basic blocks \(3, 4, 6, 3\)"):
        load_mtecg(folder)


def test_mismatched_keys_are_listed_at_most_ten(tmp_path):
    folder = copy_variant(tmp_path)
    ckpt = torch.load(folder / "model.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    del state["model.layer3.2.conv1.weight"]
    state["model.layer1.0.bn1.weight"] = torch.ones(5)
    for i in range(12):
        state[f"ema.shadow{i}"] = torch.zeros(1)
    torch.save(ckpt, folder / "model.ckpt")
    with pytest.raises(ValueError) as info:
        load_mtecg(folder)
    message = str(info.value)
    assert "missing keys: model.layer3.2.conv1.weight" in message
    assert "ema.shadow9 (+2 more)" in message and "ema.shadow10" not in message
    assert "model.layer1.0.bn1.weight (5,) != (2,)" in message


def test_clinical_models_need_their_defaults(tmp_path):
    with pytest.raises(
        ValueError, match="imputer.joblib is an sklearn pickle, not read.*--clinical-defaults"
    ):
        load_mtecg(FIXTURES / "multi-task-clinical")
    with pytest.raises(ValueError, match="missing dlp; unknown weight"):
        incomplete = {k: v for k, v in DEFAULTS.items() if k != "dlp"}
        load_mtecg(FIXTURES / "multi-task-clinical", clinical_defaults={**incomplete, "weight": 1})
    with pytest.raises(ValueError, match="dm must be 0 or 1"):
        load_mtecg(FIXTURES / "multi-task-clinical", clinical_defaults={**DEFAULTS, "dm": 0.3})
    result = CliRunner().invoke(app, ["import-mtecg", str(FIXTURES / "multi-task-clinical"),
                                      "--repository", str(tmp_path), "--clinical-defaults", "{age: 1}"])  # fmt: skip
    assert result.exit_code != 0 and "--clinical-defaults is not a JSON object" in result.output


def test_untrusted_pickles_are_refused(tmp_path):
    folder = copy_variant(tmp_path)
    ckpt = torch.load(folder / "model.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["transform"] = np.random.default_rng(0)  # an arbitrary Python object
    torch.save(ckpt, folder / "model.ckpt")
    with pytest.raises(ValueError, match="--trust-pickle"):
        load_mtecg(folder)
    run, _ = load_mtecg(folder, trust_pickle=True)
    assert run.model.config["backbone"] == "resnet34d"


def test_a_single_task_repository_lists_only_its_outputs(imported, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repository = shutil.copytree(imported("single-task-lvef").parent, tmp_path / "repository")
    card = json.loads((repository / "ecg_multitask" / "model_card.json").read_text())
    for path in [repository / "ecg_multitask/config.pbtxt", repository / "ecg_multitask/configs/cpu.pbtxt"]:
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        assert (
            {o.name: list(o.dims) for o in config.output}
            == {name: spec["shape"][1:] for name, spec in card["outputs"].items()}
            == {"lvef_probability": [1], "logits": [2], "embedding": [512], "cam": [1, 12, 12]}
        )
    ensemble = text_format.Parse((repository / "ecg_screening/config.pbtxt").read_text(), mc.ModelConfig())
    outputs = {o.name: list(o.dims) for o in ensemble.output}
    assert "SCAR_PROB" not in outputs and outputs["LOGITS"] == [2] and outputs["CAM"] == [1, 12, 12]
    mapped = {k for step in ensemble.ensemble_scheduling.step for k in step.output_map}
    assert "scar_probability" not in mapped and "lvef_probability" in mapped
    # A two-task model leaves the default configs exactly as they are, and brings back what
    # a single-task import took out of them.
    default = DEFAULT_REPOSITORY
    two_task = imported("multi-task").parent
    configs = ["ecg_multitask/config.pbtxt", "ecg_multitask/configs/cpu.pbtxt", "ecg_screening/config.pbtxt"]
    for relative in configs:
        assert (two_task / relative).read_text() == (default / relative).read_text()
    sync_triton_configs(repository, ModelCard.load(two_task / "ecg_multitask").outputs)
    for relative in configs:
        assert (repository / relative).read_text() == (default / relative).read_text()
