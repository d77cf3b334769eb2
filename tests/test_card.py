"""The typed model card: the committed card round-trips unchanged, bad cards are refused with
a reason, and the Triton configs are held to the card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgscreen.card import ModelCard, OperatingPoints, impute, triton_config_problems
from ecgscreen.contract import CLINICAL_FEATURES, MODEL_NAME
from ecgscreen.export.onnx_export import export_model
from ecgscreen.nets.multitask import MultiTaskNet
from ecgscreen.training.checkpoint import RunModel

REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
CARD_DIR = REPOSITORY / MODEL_NAME


def test_the_committed_card_loads_typed_and_saves_byte_for_byte(tmp_path):
    card = ModelCard.load(CARD_DIR)
    assert card.tasks == ["scar", "lvef"] and card.clinical.features == list(CLINICAL_FEATURES)
    assert card.outputs["cam"].shape[1:] == [2, 12, 12] and card.metrics.scar.auc > 0.9
    assert card.threshold("scar") == card.thresholds["scar"]
    assert card.threshold("scar", fused=True) == card.clinical.fused_thresholds["scar"]
    assert card.average("lvef") == card.population_average["lvef"]
    card.save(tmp_path)
    assert (tmp_path / "model_card.json").read_bytes() == (CARD_DIR / "model_card.json").read_bytes()
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write leaves no temporary file


def _write(tmp_path: Path, edit) -> Path:
    card = json.loads((CARD_DIR / "model_card.json").read_text())
    edit(card)
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return tmp_path


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda c: c.update(thresholds_v2={}), "thresholds_v2"),  # unknown keys are refused
        (lambda c: c["clinical"].update(features=["age", "dm"]), "clinical.features"),
        (lambda c: c["clinical"]["imputation_means"].pop("dlp"), "imputation_means"),
        (lambda c: c["thresholds"].pop("lvef"), "thresholds"),
        (lambda c: c.pop("onnx"), "onnx"),
        (lambda c: c.update(tasks=["scar", "ef"]), "tasks"),
    ],
)
def test_a_card_that_drifted_from_the_code_is_refused_naming_the_field(tmp_path, edit, needle):
    with pytest.raises(ValueError, match="not a valid model card") as caught:
        ModelCard.load(_write(tmp_path, edit))
    assert needle in str(caught.value)


def test_a_card_of_a_model_taking_the_old_fp32_input_says_export_again(tmp_path):
    def old(card):
        card["inputs"] = {"image": {"dtype": "FP32", "shape": [-1, 3, 384, 384]}}
        card["architecture"]["normalisation_adapter_in_graph"] = False

    with pytest.raises(ValueError, match=r"takes \['image'\], not the canonical image") as caught:
        ModelCard.load(_write(tmp_path, old))
    assert "export it again" in str(caught.value)


def test_a_missing_card_says_where_it_looked(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        ModelCard.load(tmp_path)


def test_operating_points_come_from_validation_results():
    val = {
        "tasks": ["scar", "lvef"],
        "scar": {"threshold": 0.4, "mean_probability": 0.3},
        "lvef": {"threshold": 0.6, "mean_probability": 0.2},
        "fused": {"scar": {"threshold": 0.45, "mean_probability": 0.31}},
    }
    points = OperatingPoints.from_validation(val)
    assert points.thresholds == {"scar": 0.4, "lvef": 0.6} and points.population_average["lvef"] == 0.2
    assert points.fused_thresholds == {"scar": 0.45} and points.fused_population_average == {"scar": 0.31}
    image_only = OperatingPoints.from_validation({k: v for k, v in val.items() if k != "fused"})
    assert image_only.fused_thresholds is None
    assert OperatingPoints.from_checkpoint(points.model_dump(exclude_none=True)) == points
    assert OperatingPoints.from_checkpoint({"epoch": 3}) is None  # never evaluated


def test_impute_fills_only_the_missing_features_with_the_cards_means():
    card = ModelCard.load(CARD_DIR)
    means = card.imputation_means()
    row = np.array([[70.0, np.nan, 1.0, np.nan, 0.0, 1.0]])
    filled = card.impute(row)
    assert filled.dtype == np.float32 and not np.isnan(filled).any()
    assert filled[0, 0] == 70.0 and filled[0, 1] == means[1] and filled[0, 3] == means[3]
    np.testing.assert_array_equal(impute(row, means), filled)


# -- the Triton configs follow the card ------------------------------------------------------------


def test_the_committed_triton_configs_agree_with_the_committed_card():
    assert ModelCard.load(CARD_DIR).triton_config_problems(REPOSITORY) == []


def _repository_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(REPOSITORY, copy, ignore=shutil.ignore_patterns("*.onnx", "*.py", "Dockerfile"))
    return copy


@pytest.mark.parametrize(
    "config,old,new,needle",
    [
        (
            "ecg_preprocess/config.pbtxt",
            "TYPE_UINT8, dims: [ 384, 384 ]",
            "TYPE_FP32, dims: [ 384, 384 ]",
            "output canonical is FP32",
        ),
        ("ecg_preprocess/config.pbtxt", "dims: [ 384, 384 ]", "dims: [ 384, 383 ]", "output canonical"),
        ("ecg_preprocess/configs/cpu.pbtxt", "dims: [ 384, 384 ]", "dims: [ 384, 383 ]", "output canonical"),
        (
            "ecg_multitask/configs/cpu.pbtxt",
            "TYPE_UINT8, dims: [ 384, 384 ]",
            "TYPE_FP32, dims: [ 384, 384 ]",
            "input canonical is FP32",
        ),
        ("ecg_multitask/config.pbtxt", "dims: [ 512 ]", "dims: [ 256 ]", "output embedding"),
        ("ecg_multitask/configs/cpu.pbtxt", "dims: [ 2, 12, 12 ]", "dims: [ 2, 11, 11 ]", "output cam"),
        ("ecg_multitask/configs/cpu.pbtxt", "dims: [ 4 ]", "dims: [ 2 ]", "output logits"),
        ("ecg_screening/config.pbtxt", "dims: [ 2, 12, 12 ]", "dims: [ 2, 24, 24 ]", "output CAM"),
        ("ecg_screening/config.pbtxt", "dims: [ 384, 384 ]", "dims: [ 224, 224 ]", "output CANONICAL"),
        (
            "ecg_screening/config.pbtxt",
            "TYPE_FP32, dims: [ 512 ]",
            "TYPE_FP16, dims: [ 512 ]",
            "EMBEDDING is FP16",
        ),
    ],
)
def test_a_config_that_disagrees_with_the_card_is_reported(tmp_path, config, old, new, needle):
    repository = _repository_copy(tmp_path)
    path = repository / config
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    problems = ModelCard.load(CARD_DIR).triton_config_problems(repository)
    assert len(problems) == 1 and config in problems[0] and needle in problems[0], problems


def test_a_warmup_input_of_another_size_and_a_missing_output_are_reported(tmp_path):
    repository = _repository_copy(tmp_path)
    gpu = repository / "ecg_multitask/config.pbtxt"
    text = gpu.read_text()
    warmup = text.index("model_warmup")
    gpu.write_text(text[:warmup] + text[warmup:].replace("dims: [ 384, 384 ]", "dims: [ 320, 320 ]", 1))
    cpu = repository / "ecg_multitask/configs/cpu.pbtxt"
    cpu.write_text(
        cpu.read_text().replace('  { name: "lvef_probability", data_type: TYPE_FP32, dims: [ 1 ] },\n', "")
    )
    card = ModelCard.load(CARD_DIR)
    problems = triton_config_problems(repository, card.inputs, card.outputs)
    assert any("warm-up batch8 input canonical" in p for p in problems), problems
    assert any("configs/cpu.pbtxt: outputs" in p and "lvef_probability" in p for p in problems), problems


def test_export_refuses_a_model_the_repositorys_configs_do_not_fit(tmp_path):
    repository = _repository_copy(tmp_path)
    model = MultiTaskNet("resnet18d_tiny", image_size=256).eval()  # 256 px: the configs say 384
    with pytest.raises(ValueError, match="do not fit this model") as caught:
        export_model(RunModel(model, None, {}), repository)
    assert "ecg_preprocess/config.pbtxt: output canonical" in str(caught.value)
    assert not (repository / MODEL_NAME / "1" / "model.onnx").exists()  # nothing written
    torch.manual_seed(0)
    fits = MultiTaskNet("resnet18d_tiny").eval()  # the canonical size: accepted
    card = export_model(RunModel(fits, None, {}), repository)
    assert card.triton_config_problems(repository) == []


# -- the readiness canary ---------------------------------------------------------------------
def test_the_committed_canary_is_what_the_committed_model_and_intake_answer(tmp_path):
    """Fails when the intake or the model changed without ``ecgscreen export --refresh-canary``."""
    from ecgscreen.export.canary import compute_canary

    committed = ModelCard.load(CARD_DIR).canary
    folder = shutil.copytree(CARD_DIR, tmp_path / MODEL_NAME)
    fresh = compute_canary(folder)
    assert (fresh.file, fresh.sha256, fresh.tolerance) == (
        committed.file,
        committed.sha256,
        committed.tolerance,
    )
    assert fresh.expected.keys() == committed.expected.keys() == set(ModelCard.load(CARD_DIR).tasks)
    for task, expected in committed.expected.items():
        assert fresh.expected[task] == pytest.approx(expected, abs=1e-5), (
            "run: ecgscreen export --refresh-canary"
        )
    # the INT8 variant's own answer, when it passed its parity check (what the CPU config serves)
    assert (fresh.expected_int8 is None) == (committed.expected_int8 is None)
    for task, expected in (committed.expected_int8 or {}).items():
        assert fresh.expected_int8[task] == pytest.approx(expected, abs=1e-5), (
            "run: ecgscreen export --refresh-canary"
        )


def test_a_canary_judges_answers_within_its_tolerance():
    canary = ModelCard.load(CARD_DIR).canary
    assert 0 < canary.tolerance <= 0.05
    assert canary.problems(canary.expected) == []
    near = {t: p - 0.9 * canary.tolerance for t, p in canary.expected.items()}
    assert canary.problems(near) == []
    far = {**canary.expected, "lvef": canary.expected["lvef"] - 1.5 * canary.tolerance}
    (problem,) = canary.problems(far)
    assert problem.startswith("lvef probability")
    assert canary.problems({"scar": canary.expected["scar"]}) == ["no lvef probability in the answer"]
    assert len(canary.problems({t: float("nan") for t in canary.expected})) == 2
    if canary.expected_int8 is not None:  # each variant is judged against its own answer
        assert canary.problems(canary.expected_int8, "int8") == []
        far = {t: p + 1.5 * canary.tolerance for t, p in canary.expected_int8.items()}
        assert len(canary.problems(far, "int8")) == 2 and "(INT8)" in canary.problems(far, "int8")[0]


def test_a_card_from_before_the_int8_canary_answer_loads(tmp_path):
    """Cards written before ``canary.expected_int8`` existed lack the key: they still load, and
    their one answer counts for whichever variant runs; a wrong INT8 answer is refused."""
    card = ModelCard.load(_write(tmp_path, lambda c: c["canary"].pop("expected_int8", None)))
    assert card.canary.expected_int8 is None
    assert card.canary.expected_for("int8") == card.canary.expected_for("fp32") == card.canary.expected
    with pytest.raises(ValueError, match="canary.expected_int8"):
        ModelCard.load(_write(tmp_path, lambda c: c["canary"].update(expected_int8={"scar": 1.5})))


def test_a_canary_file_that_is_missing_or_changed_is_refused(tmp_path):
    canary = ModelCard.load(CARD_DIR).canary
    assert canary.read(CARD_DIR) == (CARD_DIR / canary.file).read_bytes()
    with pytest.raises(ValueError, match="cannot be read"):
        canary.read(tmp_path)
    (tmp_path / canary.file).write_bytes((CARD_DIR / canary.file).read_bytes() + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        canary.read(tmp_path)


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda c: c["canary"].update(expected={"ef": 0.5}), "canary.expected"),
        (lambda c: c["canary"].update(expected={"scar": 1.5}), "canary.expected"),
        (lambda c: c["canary"].pop("tolerance"), "canary.tolerance"),
    ],
)
def test_a_canary_that_drifted_is_refused_naming_the_field(tmp_path, edit, needle):
    with pytest.raises(ValueError, match="not a valid model card") as caught:
        ModelCard.load(_write(tmp_path, edit))
    assert needle in str(caught.value)
