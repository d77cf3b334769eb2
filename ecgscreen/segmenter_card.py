"""The page segmenter's model card (``model_repository/ecg_segment/model_card.json``), typed.

Written by ``ecgscreen.export.segmenter``, read by whoever runs the segmenter (the Triton
python backend, intake once it is wired). Same key policy as the network's ``ModelCard``
(``ecgscreen.card``): unknown keys are refused, provenance lives in ``training_data``. Like
nnU-Net's ``dataset.json``, the card names its classes, its input (scale and normalisation)
and its measured per-class IoU on pages it never saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import field_validator, model_validator

from .card import OnnxFile, Recipe, TensorSpec, _CardFile, _Strict
from .contract import (
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_CLASSES,
    SEGMENTER_INPUT,
    SEGMENTER_PROBABILITY_OUTPUT,
)

__all__ = ["SegmenterArchitecture", "SegmenterInput", "SegmenterMetrics", "SegmenterSpeed", "SegmenterInt8", "SegmenterCard",
           "segmenter_config_problems"]  # fmt: skip

ACQUISITIONS = ("clean", "scan", "photo")


class SegmenterArchitecture(_Strict):
    kind: str  # in words
    variant: str
    features: list[int]
    parameters: int


class SegmenterInput(_Strict):
    """What the graph is given and how it normalises it."""

    px_per_mm: float  # the scale pages are resized to before the segmenter
    colour: str  # "RGB uint8 (B, H, W, 3); a grey page as three equal channels"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalisation: str  # in words: (x / 255 - mean) / std
    trained_on: str  # crop size and scale range, in words


class SegmenterMetrics(_Strict):
    """``training.segmenter.evaluate_segmenter`` on fresh generator pages, through the ONNX."""

    data: str
    seed: int
    n_pages: int  # evaluated
    pages_skipped: int = 0  # drawn but not paired (segment_data.make_pair refused them)
    pages_by_acquisition: dict[str, int]
    per_class_iou: dict[str, float | None]
    mean_iou: float
    trace_precision: float
    trace_recall: float
    trace_iou_by_acquisition: dict[str, float]

    @field_validator("per_class_iou")
    @classmethod
    def _every_class(cls, iou: dict[str, float | None]) -> dict[str, float | None]:
        if list(iou) != list(SEGMENTER_CLASSES):
            raise ValueError(
                f"per_class_iou keys {list(iou)} must be {list(SEGMENTER_CLASSES)} in that order"
            )
        return iou

    @field_validator("trace_iou_by_acquisition", "pages_by_acquisition")
    @classmethod
    def _acquisitions(cls, values: dict[str, Any]) -> dict[str, Any]:
        unknown = [a for a in values if a not in ACQUISITIONS]
        if unknown:
            raise ValueError(f"acquisitions {unknown} must be among {list(ACQUISITIONS)}")
        return values


class SegmenterSpeed(_Strict):
    median_ms_per_page: float
    page: str  # the page size measured, in words
    measured_with: str  # runtime, threads, machine


class SegmenterInt8(_Strict):
    """The segmenter's INT8 variant (``export.segmenter_int8``): how it was made and how it
    compares with FP32. The CPU server runs it only when ``passed``; a refused variant's file
    is deleted and ``refused`` says why."""

    file: str  # relative to the card's folder
    sha256: str
    bytes: int
    method: str
    calibration: str  # for people
    fresh: str  # the fresh pages of the check, for people
    trace_iou_fp32: float
    trace_iou_int8: float
    ms_per_page_fp32: float  # one A4 page, one thread, measured in turns in the same run
    ms_per_page_int8: float
    limits: dict[str, float]  # trace_iou_diff; and INT8 must be faster
    measured_with: str
    passed: bool
    refused: str | None = None


class SegmenterCard(_CardFile):
    _kind: ClassVar[str] = "segmenter card"

    name: str
    version: str
    created: str
    intended_use: str
    classes: list[str]
    architecture: SegmenterArchitecture
    input: SegmenterInput
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    onnx: OnnxFile
    training_data: dict[str, Any]
    training: dict[str, Any]  # steps, crops seen, minutes, final losses
    metrics: SegmenterMetrics | None = None
    speed: SegmenterSpeed | None = None
    recipe: Recipe | None = None
    int8: SegmenterInt8 | None = None

    @model_validator(mode="after")
    def _contract(self) -> SegmenterCard:
        if tuple(self.classes) != SEGMENTER_CLASSES:
            raise ValueError(f"classes {self.classes} must be {list(SEGMENTER_CLASSES)}")
        if set(self.inputs) != {SEGMENTER_INPUT}:
            raise ValueError(f"inputs {sorted(self.inputs)} must be [{SEGMENTER_INPUT!r}]")
        expected = {SEGMENTER_CLASS_OUTPUT, SEGMENTER_PROBABILITY_OUTPUT}
        if set(self.outputs) != expected:
            raise ValueError(f"outputs {sorted(self.outputs)} must be {sorted(expected)}")
        return self


def segmenter_config_problems(
    folder: Path, inputs: Mapping[str, TensorSpec], outputs: Mapping[str, TensorSpec]
) -> list[str]:
    """Every way ``folder``'s Triton configs (``config.pbtxt``, ``configs/*.pbtxt``) disagree
    with the card's tensors (names, dtypes, dims without the batch axis)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    folder = Path(folder)
    problems = []
    for path in [folder / "config.pbtxt", *sorted(folder.glob("configs/*.pbtxt"))]:
        if not path.is_file():
            continue
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        where = str(path.relative_to(folder.parent))
        for kind, specs, tensors in (("input", inputs, config.input), ("output", outputs, config.output)):
            got = {
                t.name: (mc.DataType.Name(t.data_type).removeprefix("TYPE_"), list(t.dims)) for t in tensors
            }
            want = {name: (spec.dtype, spec.shape[1:]) for name, spec in specs.items()}
            if got != want:
                problems.append(f"{where}: {kind}s {got}, the model card says {want}")
    return problems
