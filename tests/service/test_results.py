"""The gateway's answers, without servers: risk levels, task results at the card's thresholds,
and the HTTP answer to every kind of failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgscreen.card import ModelCard
from ecgscreen.imaging.errors import INTERNAL, IntakeError
from service.results import failure, fused_result, model_info, risk_level, task_result, task_results
from service.schemas import PredictResponse, PreprocessingInfo
from service.triton_client import Unavailable, UpstreamError, UpstreamTimeout

CARD = ModelCard.load(Path(__file__).resolve().parents[2] / "model_repository" / "ecg_multitask")


@pytest.mark.parametrize(
    "p,level",
    [(0.0, "low"), (0.2999, "low"), (0.3, "medium"), (0.6999, "medium"), (0.7, "high"), (1.0, "high")],
)
def test_risk_levels_follow_the_studys_bands(p, level):
    assert risk_level(p) == level


def test_task_result_applies_the_threshold_and_rounds():
    result = task_result(0.41234567, threshold=0.4, average=0.3333333333)
    assert result.prediction == 1 and result.risk_level == "medium"
    assert result.probability.positive == 0.412346 and result.probability.negative == 0.587654
    assert result.average == 0.333333 and result.threshold == 0.4
    assert task_result(0.39, threshold=0.4, average=None).prediction == 0
    assert task_result(0.39, threshold=0.4, average=None).average is None


def test_task_results_use_the_cards_image_and_fused_operating_points():
    probabilities = {"scar": 0.42, "lvef": 0.42}
    image = task_results(probabilities, CARD)
    fused = fused_result(probabilities, ["dm"], CARD)
    assert image["scar"].threshold == round(CARD.thresholds["scar"], 6)  # 0.402: positive
    assert fused.scar.threshold == round(CARD.clinical.fused_thresholds["scar"], 6)  # 0.432: negative
    assert image["scar"].prediction == 1 and fused.scar.prediction == 0
    assert image["lvef"].average == round(CARD.population_average["lvef"], 6)
    assert fused.lvef.average == round(CARD.clinical.fused_population_average["lvef"], 6)
    assert fused.imputed == ["dm"]


def test_a_predict_response_has_the_documented_shape():
    info = {"source_format": "pdf", "warnings": [], "layout": "3x4+1", "elapsed_ms": 20.1}
    body = PredictResponse(
        **task_results({"scar": 0.8, "lvef": 0.1}, CARD),
        fused=None,
        model=model_info(CARD),
        preprocessing=PreprocessingInfo.model_validate(info),
        request_id="abc",
    ).model_dump(mode="json", exclude_unset=True)
    assert set(body) == {"scar", "lvef", "fused", "model", "preprocessing", "request_id"}
    assert body["fused"] is None and body["preprocessing"] == info  # no invented keys
    assert body["scar"]["risk_level"] == "high" and body["lvef"]["prediction"] == 0
    assert body["model"] == {"name": "ecg_multitask", "version": "1", "intended_use": CARD.intended_use}


@pytest.mark.parametrize(
    "error,status,reason,outcome,retry",
    [
        (IntakeError("corrupt", "the PNG is corrupt"), 400, "corrupt", "bad_input", False),
        (IntakeError("too_large", "too big"), 413, "too_large", "too_large", False),
        (IntakeError("no_layout", "no rows"), 422, "no_layout", "bad_input", False),
        (IntakeError(INTERNAL, "preprocessing failed unexpectedly"), 500, "internal", "error", False),
        (ValueError("invalid clinical features: age"), 422, "invalid_field", "bad_input", False),
        (Unavailable("down"), 503, "upstream_unavailable", "upstream_unavailable", True),
        (UpstreamTimeout("slow"), 504, "timeout", "timeout", True),
        (UpstreamError("boom"), 502, "upstream_error", "error", False),
        (KeyError("secret file text"), 500, "internal", "error", False),
    ],
)
def test_every_failure_has_its_http_answer(error, status, reason, outcome, retry):
    answer = failure(error)
    assert (answer.status, answer.error, answer.outcome, answer.retry) == (status, reason, outcome, retry)
    assert answer.detail and "secret" not in answer.detail  # an unexpected error's text stays out
