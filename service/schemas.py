"""The gateway's response bodies, typed. They are the return annotations of the BentoML APIs,
so the OpenAPI page (``/docs.json``) documents the fields a client gets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RiskLevel",
    "Probability",
    "TaskResult",
    "FusedResult",
    "ModelInfo",
    "LeadReading",
    "PreprocessingInfo",
    "NoveltyInfo",
    "PredictResponse",
    "ExplainResponse",
    "ErrorResponse",
    "PageTask",
    "ModelSummary",
    "PageInfo",
]

RiskLevel = Literal["low", "medium", "high"]


class Probability(BaseModel):
    negative: float = Field(description="1 - positive")
    positive: float = Field(description="probability that the finding is present")


class TaskResult(BaseModel):
    """One task's answer, in the shape of the study's own app."""

    prediction: Literal[0, 1] = Field(description="1 when the positive probability reaches the threshold")
    probability: Probability
    risk_level: RiskLevel = Field(description="the study's bands: < 30 % low, 30-70 % medium, >= 70 % high")
    threshold: float = Field(description="the model card's decision threshold (Youden on validation)")
    average: float | None = Field(description="mean predicted probability on the validation split")


class FusedResult(BaseModel):
    """The answers with the clinical features fused in (missing ones imputed)."""

    scar: TaskResult | None = Field(description="null when the model does not answer this task")
    lvef: TaskResult | None = Field(description="null when the model does not answer this task")
    imputed: list[str] = Field(description="clinical features that were missing, filled with training means")


class ModelInfo(BaseModel):
    name: str
    version: str
    intended_use: str


class LeadReading(BaseModel):
    status: Literal["read", "doubtful", "missing"]
    reason: str = Field(description="why, in words: 'beats agree with the other leads', 'flat line', ...")
    score: float = Field(description="0..1: the share of the lead's printed span read (0 when flat)")


class PreprocessingInfo(BaseModel):
    """What intake found in the file (never text read from it)."""

    model_config = ConfigDict(extra="allow")

    source_format: str = Field(description="sniffed from the bytes: png, jpeg, tiff, pdf, dicom-<kind>")
    layout: str | None = Field(None, description="3x4, 3x4+1, 3x4+2, 3x4+3, 6x2, 6x2+1, 12x1 or waveform")
    rhythm_leads: list[str] | None = Field(
        None,
        description="the leads of the full-width rhythm strips, top to bottom (from their label or trace)",
    )
    rotation_deg: float | None = None
    grid: str | None = None
    gain_mm_per_mv: float | None = None
    gain_source: str | None = Field(
        None,
        description="where the voltage scale came from: waveform, pulse (the printed 1 mV pulse), "
        "text (the printed gain) or standard (10 mm/mV assumed; a warning says so)",
    )
    reading: str | None = Field(None, description="vector: a PDF read from the polylines it draws (exact)")
    paper_speed_mm_s: float | None = None
    sample_rate_hz: float | None = None
    quality: float | None = Field(
        None,
        description="0..1, the reading judge's score: the leads' mean share of their printed span read, "
        "0 for a lead judged flat or beyond a heart's amplitude",
    )
    heart_rate_bpm: float | None = Field(None, description="from the beats the leads agree on")
    leads: dict[str, LeadReading] | None = Field(
        None,
        description="each lead's reading as judged: read, doubtful (left blank in the model input, "
        "named in the warnings) or missing, with the reason",
    )
    warnings: list[str] = Field(default_factory=list)
    elapsed_ms: float | None = None


class NoveltyInfo(BaseModel):
    """How far this ECG's embedding lies from the training ECGs' (Mahalanobis)."""

    distance: float
    threshold: float = Field(description="the 99th percentile of held-out training ECGs' distances")
    unusual: bool = Field(description="distance above threshold: unlike anything trained on (also a warning)")


class PredictResponse(BaseModel):
    """``POST /predict``: each task (null if the model lacks it), the optional fused answer and how
    the file was read."""

    scar: TaskResult | None = Field(
        description="myocardial scar; null when the model does not answer it (a single-task model), or has no "
        "image-only answer (a clinical model of the study: see fused)"
    )
    lvef: TaskResult | None = Field(description="LVEF < 50 %; null as scar")
    fused: FusedResult | None = Field(
        description="null unless clinical features were sent (always given for a clinical model of the study)"
    )
    model: ModelInfo
    preprocessing: PreprocessingInfo
    novelty: NoveltyInfo | None = Field(
        None, description="null when the model card holds no embedding distribution (exported before it)"
    )
    request_id: str


class ExplainResponse(BaseModel):
    """``POST /explain`` with ``format=json`` (the default ``png`` is the heatmap picture)."""

    task: Literal["scar", "lvef"]
    probability: float
    risk_level: RiskLevel
    cam: list[list[float]] = Field(description="Grad-CAM++ at the last conv block's resolution")
    attribution: dict[str, float] = Field(description="each lead's share of the heat (sums to 1)")
    territories: dict[str, float] = Field(description="anterior, inferior, lateral and other shares")
    top_leads: list[str]
    canonical_size: int
    model: ModelInfo
    preprocessing: PreprocessingInfo
    request_id: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer."""

    error: str = Field(description="a stable reason code, e.g. too_large, no_layout, upstream_unavailable")
    detail: str = Field(description="what was wrong and what to do")
    status: int
    request_id: str | None = None


class PageTask(BaseModel):
    description: str
    threshold: float
    average: float | None
    auc: float | None = None
    auc_ci95: tuple[float, float] | None = None
    sensitivity: float | None = None
    specificity: float | None = None


class ModelSummary(BaseModel):
    """The model card as a reader of one result needs it (the page and its printed report)."""

    name: str
    version: str
    created: str
    intended_use: str
    backbone: str
    input_size: int
    training_data: str | None = Field(description="what the model was trained on, in words")
    evaluated_on: int | None = Field(description="how many ECGs the metrics were measured on")
    tasks: dict[str, PageTask]
    clinical_features: list[str]
    cpu_precision: str | None = Field(
        None,
        description="the network the embedded CPU server runs: int8 (the card's INT8 variant passed its parity "
        "check) or fp32 (ECGSCREEN_CPU_PRECISION=fp32, or no variant passed); the GPU config runs FP32/FP16",
    )


class PageInfo(BaseModel):
    """``GET /ui/about.json``: what the screening page reads before the first upload."""

    model: ModelSummary
    token_required: bool = Field(description="the API wants 'Authorization: Bearer <token>'")
    max_upload_bytes: int = Field(description="larger files are refused by the page before sending")
    endpoints: list[str] = Field(description="the gateway's API routes (the page offers /report when listed)")
