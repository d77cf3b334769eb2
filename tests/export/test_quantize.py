"""The INT8 variant (issue 23): made from the exported network, kept only when it answers as
FP32 does, recorded in the card, served by the CPU config when it passed; the readiness canary
holds each variant's expected answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from ecgscreen.card import ModelCard
from ecgscreen.contract import CPU_PRECISION_ENV, INT8_MODEL_FILE, MODEL_NAME
from ecgscreen.export import quantize
from ecgscreen.export.quantize import Int8Options, quantize_export
from ecgscreen.serving.precision import CPU_BACKEND, cpu_network, served_precision

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository" / MODEL_NAME
# Small sets for CI time: 9 calibration ECGs are too few for the default limits (the committed
# variant, calibrated on 96, meets them: README, "Measured"); these limits are loose enough for
# the real variant and far too tight for a broken one.
SMALL = dict(n_calibration=12, n_fresh=40, max_probability_diff=0.3, max_auc_diff=0.05)


@pytest.fixture
def repository(committed_copy) -> Path:
    return committed_copy(MODEL_NAME)


def test_the_real_variant_passes_is_under_half_of_fp32_and_answers_the_canary(repository):
    card = quantize_export(repository, options=Int8Options(**SMALL))
    q, folder = card.int8, repository / MODEL_NAME
    assert q.passed and q.refused is None, q.refused
    path = folder / q.file
    assert path.name == INT8_MODEL_FILE and path.is_file() and path.stat().st_size == q.bytes
    assert q.bytes < 0.5 * card.onnx.bytes  # INT8 conv weights; heads, fc and FP32_CONVS stay FP32
    assert "kept FP32" in q.method and "/downsample/" in q.method
    # the loose test limits pass the first recipe: only the stem's first convolution and the
    # downsample convs stay FP32
    assert q.tried == [] and "layer1.0/conv1" not in q.method
    assert "conv1.0/" in q.method and "conv1.6/" not in q.method
    proto = onnx.load(str(path))
    assert {n.op_type for n in proto.graph.node} >= {"QuantizeLinear", "DequantizeLinear", "Conv"}
    assert [o.name for o in proto.graph.output] == list(card.outputs)  # every output kept, same names
    # the residual identity path reads FP32: an Add takes at most its convolution's DQ output
    made_by = {o: n.op_type for n in proto.graph.node for o in n.output}
    adds = [n for n in proto.graph.node if n.op_type == "Add" and "layer" in n.name]
    assert adds and all(sum(made_by.get(i) == "DequantizeLinear" for i in n.input) <= 1 for n in adds)
    assert q.max_abs_diff_held_out <= SMALL["max_probability_diff"] and q.n_fresh == SMALL["n_fresh"]
    assert set(q.auc_fp32) == set(q.auc_int8) == set(card.tasks)
    assert set(q.limits) == {"max_abs_diff", "auc_diff"}  # the canary is no part of the gate
    # the card round-trips; the canary expects FP32's answer and, now, INT8's too
    assert ModelCard.load(folder) == card
    assert card.canary.computed_with.startswith(
        f"1/model.onnx (sha256 {card.onnx.sha256[:12]}) and 1/{INT8_MODEL_FILE}"
    )
    before = ModelCard.load(COMMITTED).canary
    assert card.canary.expected == pytest.approx(before.expected, abs=1e-5)  # the same FP32 network
    assert card.canary.expected_int8.keys() == card.canary.expected.keys()
    moved = max(abs(card.canary.expected_int8[t] - card.canary.expected[t]) for t in card.canary.expected)
    assert q.canary_diff == pytest.approx(moved, abs=2e-6)
    assert cpu_network(card, {}).precision == "int8"


def test_a_variant_calibrated_on_blank_paper_is_refused_and_deleted(repository, monkeypatch):
    """Calibrated on pages without a trace, every activation range is tiny: a real ECG clips."""
    before = ModelCard.load(repository / MODEL_NAME)

    def blank(n, seed, size, progress=None):
        return np.full((n, size, size), 255, dtype=np.uint8)

    monkeypatch.setattr(quantize, "intake_canonicals", blank)
    card = quantize_export(repository, options=Int8Options(**SMALL))
    q = card.int8
    assert not q.passed and "max |dP|" in q.refused, q.refused
    assert q.max_abs_diff_fresh > SMALL["max_probability_diff"]
    assert not (repository / MODEL_NAME / q.file).exists()  # never served, never shipped
    assert card.canary.expected == before.canary.expected  # FP32's answer, and no INT8 one
    assert card.canary.expected_int8 is None and INT8_MODEL_FILE not in card.canary.computed_with
    network = cpu_network(card, {})
    assert network.precision == "fp32" and network.file == card.onnx.file and "refused" in network.why


def test_a_refused_recipe_gives_way_to_one_with_more_fp32_convolutions(repository, monkeypatch):
    """The first recipe's variant moves the probabilities by 0.5: refused and recorded in
    ``tried``; the next recipe (more convolutions FP32) passes and is the one kept."""
    recipes = []
    real_quantize, real_probabilities = quantize.quantize_network, quantize._probabilities

    def recording(fp32, out, images, fp32_convs):
        recipes.append(fp32_convs)
        return real_quantize(fp32, out, images, fp32_convs)

    def first_recipe_off(path, images, tasks, batch=16):
        p = real_probabilities(path, images, tasks, batch)
        first = Path(path).name == INT8_MODEL_FILE and len(recipes) == 1
        return {t: np.clip(v + 0.5, 0, 1) if first else v for t, v in p.items()}

    monkeypatch.setattr(quantize, "quantize_network", recording)
    monkeypatch.setattr(quantize, "_probabilities", first_recipe_off)
    card = quantize_export(repository, options=Int8Options(**SMALL))
    q = card.int8
    assert recipes == list(quantize.RECIPES) and len(recipes[0]) < len(recipes[1])
    assert q.passed and len(q.tried) == 1 and "refused" in q.tried[0] and "max |dP|" in q.tried[0]
    assert "/layer1/layer1.0/conv1/" in q.method  # the second recipe's FP32 convolutions
    assert (repository / MODEL_NAME / q.file).is_file() and ModelCard.load(repository / MODEL_NAME) == card


def test_the_gate_refuses_a_moved_auc(repository, monkeypatch):
    real = quantize._probabilities

    def shuffled(path, images, tasks, batch=16):  # the INT8 file answers someone else's ECG
        p = real(path, images, tasks, batch)
        return {t: np.roll(v, 1) for t, v in p.items()} if Path(path).name == INT8_MODEL_FILE else p

    monkeypatch.setattr(quantize, "_probabilities", shuffled)
    card = quantize_export(repository, options=Int8Options(**{**SMALL, "max_probability_diff": 1.0}))
    assert not card.int8.passed and "AUC moved" in card.int8.refused


def test_a_variant_whose_canary_answer_moves_passes_with_its_own_expected_answer(repository, monkeypatch):
    """The gate is max |dP| and AUC only: the canary has an expected answer per variant, so
    how far INT8's answer is from FP32's is recorded, not judged (issue 23)."""
    from ecgscreen.export import canary as canary_module

    real = canary_module.canary_answer

    def moved(network, canonical):  # the INT8 network answers the canary 0.3 lower
        answer = real(network, canonical)
        return (
            {t: max(0.0, p - 0.3) for t, p in answer.items()}
            if Path(network).name == INT8_MODEL_FILE
            else answer
        )

    monkeypatch.setattr(canary_module, "canary_answer", moved)
    assert not hasattr(Int8Options(), "max_canary_diff")
    card = quantize_export(repository, options=Int8Options(**SMALL))
    q, canary = card.int8, card.canary
    assert q.passed and q.refused is None, q.refused
    assert q.canary_diff > 0.1 and set(q.limits) == {"max_abs_diff", "auc_diff"}
    assert all(abs(canary.expected_int8[t] - canary.expected[t]) > 0.1 for t in canary.expected)
    int8_answer = dict(canary.expected_int8)
    assert canary.problems(int8_answer, "int8") == [] and canary.problems(int8_answer, "fp32") != []
    assert canary.problems(dict(canary.expected), "fp32") == []


def test_the_served_variant_decides_which_expected_answer_counts():
    card = _card(True)
    card.canary.expected_int8 = {t: round(p - 0.1, 6) for t, p in card.canary.expected.items()}
    assert served_precision(card, CPU_BACKEND, {}) == "int8"
    assert served_precision(card, CPU_BACKEND, {CPU_PRECISION_ENV: "fp32"}) == "fp32"
    assert served_precision(card, "onnxruntime", {}) == "fp32"  # the GPU config: FP32/FP16
    assert served_precision(card, None, {}) == "fp32"
    assert served_precision(_card(False), CPU_BACKEND, {}) == "fp32"
    with pytest.raises(ValueError, match=CPU_PRECISION_ENV):
        served_precision(_card(False), CPU_BACKEND, {CPU_PRECISION_ENV: "int8"})
    assert card.canary.expected_for("int8") == card.canary.expected_int8
    assert card.canary.expected_for("fp32") == card.canary.expected
    card.canary.expected_int8 = None  # a card from before: its one answer is the served variant's
    assert card.canary.expected_for("int8") == card.canary.expected
    with pytest.raises(ValueError, match="fp16"):
        card.canary.expected_for("fp16")


def _card(passed: bool | None) -> ModelCard:
    card = ModelCard.load(COMMITTED)
    if passed is None:
        card.int8 = None
        return card
    card.int8 = quantize.QuantizedFile(
        file=f"1/{INT8_MODEL_FILE}", sha256="0" * 64, bytes=1, method="m", calibration="c", n_calibration=1,
        n_held_out=1, max_abs_diff_held_out=0.01, fresh="f", n_fresh=1, max_abs_diff_fresh=0.01,
        auc_fp32={"scar": 0.9}, auc_int8={"scar": 0.9}, canary_diff=0.0, limits={}, measured_with="w",
        passed=passed, refused=None if passed else "fresh max |dP| 0.08 > 0.02",
    )  # fmt: skip
    return card


@pytest.mark.parametrize(
    ("passed", "setting", "expected"),
    [
        (True, None, "int8"), (True, "auto", "int8"), (True, "INT8", "int8"), (True, "fp32", "fp32"),
        (False, None, "fp32"), (False, "fp32", "fp32"), (None, None, "fp32"), (None, "auto", "fp32"),
    ],
)  # fmt: skip
def test_the_cpu_config_serves_int8_when_it_passed_and_fp32_when_told(passed, setting, expected):
    environ = {} if setting is None else {CPU_PRECISION_ENV: setting}
    network = cpu_network(_card(passed), environ)
    assert network.precision == expected
    assert network.file == (f"1/{INT8_MODEL_FILE}" if expected == "int8" else "1/model.onnx")


@pytest.mark.parametrize(("passed", "setting"), [(False, "int8"), (None, "int8"), (True, "fp16")])
def test_an_impossible_cpu_precision_is_an_error_that_says_why(passed, setting):
    with pytest.raises(ValueError, match=CPU_PRECISION_ENV):
        cpu_network(_card(passed), {CPU_PRECISION_ENV: setting})


def test_the_committed_card_says_what_the_cpu_runs():
    card = ModelCard.load(COMMITTED)
    network = cpu_network(card, {})
    if card.int8 is not None and card.int8.passed:
        assert network.precision == "int8" and (COMMITTED / card.int8.file).is_file()
        assert card.canary.expected_int8 is not None and card.int8.file in card.canary.computed_with
        assert (
            card.int8.max_abs_diff_fresh <= card.int8.limits["max_abs_diff"] == quantize.MAX_PROBABILITY_DIFF
        )
    else:
        assert network.precision == "fp32" and not (COMMITTED / "1" / INT8_MODEL_FILE).exists()
        assert card.canary.expected_int8 is None


def test_about_json_says_which_network_the_cpu_runs(monkeypatch):
    from service.page import card_summary

    monkeypatch.delenv(CPU_PRECISION_ENV, raising=False)
    assert card_summary(_card(True)).cpu_precision == "int8"
    assert card_summary(_card(False)).cpu_precision == "fp32"
    monkeypatch.setenv(CPU_PRECISION_ENV, "fp32")
    assert card_summary(_card(True)).cpu_precision == "fp32"
