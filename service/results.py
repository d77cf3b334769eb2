"""What the gateway answers: results from probabilities and the model card, and the HTTP
answer to every failure. Pure functions, tested without servers."""

from __future__ import annotations

from dataclasses import dataclass

from ecgscreen import contract
from ecgscreen.card import ModelCard
from ecgscreen.contract import TASKS
from ecgscreen.imaging.errors import IntakeError

from .schemas import FusedResult, ModelInfo, Probability, RiskLevel, TaskResult
from .triton_client import Unavailable, UpstreamError, UpstreamTimeout

__all__ = ["risk_level", "task_result", "task_results", "fused_result", "model_info", "Failure", "failure"]


def risk_level(probability: float) -> RiskLevel:
    """The study's app: < 30 % low, 30-70 % medium, >= 70 % high (``contract.risk_level``)."""
    return contract.risk_level(probability)  # type: ignore[return-value]


def task_result(probability: float, threshold: float, average: float | None) -> TaskResult:
    return TaskResult(
        prediction=int(probability >= threshold),
        probability=Probability(negative=round(1.0 - probability, 6), positive=round(probability, 6)),
        risk_level=risk_level(probability),
        threshold=round(threshold, 6),
        average=None if average is None else round(average, 6),
    )


def task_results(
    probabilities: dict[str, float], card: ModelCard, fused: bool = False
) -> dict[str, TaskResult | None]:
    """Each task's result at the card's threshold (the fusion head's own when ``fused``);
    ``None`` for a task without a probability (the model does not answer it)."""
    return {
        task: task_result(probabilities[task], card.threshold(task, fused), card.average(task, fused))
        if task in probabilities
        else None
        for task in TASKS
    }


def fused_result(probabilities: dict[str, float], imputed: list[str], card: ModelCard) -> FusedResult:
    return FusedResult(**task_results(probabilities, card, fused=True), imputed=imputed)


def model_info(card: ModelCard) -> ModelInfo:
    return ModelInfo(name=card.name, version=card.version, intended_use=card.intended_use)


@dataclass(frozen=True)
class Failure:
    """The answer to a request that failed: HTTP status, reason code, detail for the client,
    the ``outcome`` label of the request counter, and whether to send ``Retry-After``."""

    status: int
    error: str
    detail: str
    outcome: str
    retry: bool = False


def failure(error: BaseException) -> Failure:
    """What the client hears when serving a request raised ``error``."""
    if isinstance(error, IntakeError):  # the file (4xx), or intake itself (500)
        outcome = "too_large" if error.status == 413 else "bad_input" if error.status < 500 else "error"
        return Failure(error.status, error.reason, error.message, outcome)
    if isinstance(error, ValueError):  # bad form fields (clinical, task, format)
        return Failure(422, "invalid_field", str(error), "bad_input")
    if isinstance(error, Unavailable):
        detail = "the inference server is unavailable; retry shortly"
        return Failure(503, "upstream_unavailable", detail, "upstream_unavailable", retry=True)
    if isinstance(error, UpstreamTimeout):
        return Failure(
            504,
            "timeout",
            "the inference server did not answer in time; retry shortly",
            "timeout",
            retry=True,
        )
    if isinstance(error, UpstreamError):
        return Failure(502, "upstream_error", "the inference server failed on this request", "error")
    # never a stack trace to the client
    return Failure(500, "internal", "unexpected error; the request id identifies it in the logs", "error")
