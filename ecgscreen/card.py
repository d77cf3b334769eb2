"""The model card: what export writes next to the model, and every consumer reads, typed.

``model_card.json`` sits in the model's folder (``model_repository/<MODEL_NAME>/``). Export
builds it (``ecgscreen.export``), the predictors, the gateway and its fusion head read it as a
``ModelCard``, never as a dict read with ``.get(key, default)``: a consumer cannot disagree
with the producer, and a card that does not parse fails at start-up, not at a request.

Policy on keys: every model forbids unknown keys (a key this code does not know means the card
and the code drifted apart, and that should be loud). Free-form provenance lives in the two
fields typed as plain mappings, ``source`` and ``training_data``. A card keeps its JSON shape
through ``load``/``save``: keys absent from a file stay absent (``save`` writes the fields that
were set, ``exclude_unset``), so a card written by an older export round-trips unchanged.

Besides the schema, this module is the one place that

* derives decision thresholds and population averages from validation results
  (``OperatingPoints.from_validation``: training and export both call it);
* imputes missing clinical features (``impute``; the card's means are the served ones);
* checks the Triton configs against the card (``triton_config_problems``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .contract import (
    CLINICAL_FEATURES,
    ENSEMBLE_CANONICAL,
    ENSEMBLE_NAME,
    MODEL_CARD_FILE,
    MODEL_INPUT,
    MODEL_NAME,
    PREPROCESS_NAME,
    TASKS,
)

__all__ = [
    "TensorSpec",
    "Architecture",
    "Calibration",
    "Clinical",
    "TaskMetrics",
    "Metrics",
    "OnnxFile",
    "QuantizedFile",
    "Recipe",
    "Canary",
    "Novelty",
    "OperatingPoints",
    "ModelCard",
    "impute",
    "triton_config_problems",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TensorSpec(_Strict):
    """One ONNX tensor: ``shape`` with ``-1`` for the batch axis; ``order`` names the entries
    of a per-task or per-class axis."""

    dtype: str
    shape: list[int]
    order: list[str] | None = None


class Architecture(_Strict):
    backbone: str
    embedding: str
    heads: dict[str, str]
    parameters: int
    cam: str


class Calibration(_Strict):
    """Platt parameters ``(a, b)`` per task, for the image model and the fusion head."""

    method: str
    image: dict[str, tuple[float, float]] | None = None
    fused: dict[str, tuple[float, float]] | None = None


class Clinical(_Strict):
    """The clinical fusion head: its features, imputation means and operating points."""

    features: list[str]
    imputation_means: dict[str, float]
    imputation: str
    fusion: str  # file name, next to the card
    fused_thresholds: dict[str, float] | None
    fused_population_average: dict[str, float] | None

    @field_validator("features")
    @classmethod
    def _study_order(cls, features: list[str]) -> list[str]:
        if tuple(features) != CLINICAL_FEATURES:
            raise ValueError(f"clinical features {features} must be {list(CLINICAL_FEATURES)} in that order")
        return features

    @model_validator(mode="after")
    def _every_mean(self) -> Clinical:
        if set(self.imputation_means) != set(self.features):
            raise ValueError(f"imputation_means {sorted(self.imputation_means)} must cover {self.features}")
        return self


class TaskMetrics(_Strict):
    """One task's test metrics as the card keeps them (``None``: undefined on that data)."""

    auc: float | None
    auc_ci95: tuple[float, float] | None
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    ece: float | None
    brier: float | None
    n: int
    prevalence: float | None
    threshold: float
    threshold_rule: str


class Hardest(_Strict):
    clean: float | None
    hardest: str | None
    hardest_auc: float | None


class Metrics(_Strict):
    """Test metrics per task (``scar``, ``lvef``), fused ones, and the clean-vs-hardest AUCs."""

    split: str | None = None
    n: int | None = None
    scar: TaskMetrics | None = None
    lvef: TaskMetrics | None = None
    fused: dict[str, TaskMetrics] | None = None
    clean_vs_hardest: dict[str, Hardest] | None = None
    data: str | None = None  # what the metrics were measured on, in words

    @classmethod
    def from_results(cls, results: Mapping[str, Any] | None) -> Metrics | None:
        """The card's part of ``ecgscreen evaluate``'s results (``metrics.json``)."""
        if not results:
            return None
        keys = list(TaskMetrics.model_fields)
        trim = lambda ms: {t: {k: m.get(k) for k in keys} for t, m in ms.items()}  # noqa: E731
        out: dict[str, Any] = {
            "split": results.get("split"),
            "n": results.get("n"),
            **trim({t: results[t] for t in results["tasks"]}),
        }
        if results.get("fused"):
            out["fused"] = trim(results["fused"])
        if (results.get("subsets") or {}).get("clean_vs_hardest"):
            out["clean_vs_hardest"] = results["subsets"]["clean_vs_hardest"]
        return cls.model_validate(out)


class OnnxFile(_Strict):
    file: str  # relative to the card's folder
    sha256: str
    bytes: int
    opset: int
    max_abs_diff_vs_torch: float


class QuantizedFile(_Strict):
    """The network's INT8 variant (``export.quantize``): how it was made and how far its
    answers are from FP32's. The embedded CPU server runs it only when ``passed``; a refused
    variant's file is deleted and ``refused`` says why."""

    file: str  # relative to the card's folder
    sha256: str
    bytes: int
    method: str
    calibration: str  # the calibration data, for people
    n_calibration: int
    n_held_out: int
    max_abs_diff_held_out: float  # max |P(INT8) - P(FP32)| over tasks, held-out calibration ECGs
    fresh: str  # the fresh ECGs of the AUC check, for people
    n_fresh: int
    max_abs_diff_fresh: float
    auc_fp32: dict[str, float]
    auc_int8: dict[str, float]
    # max |P(INT8) - P(FP32)| on the readiness canary, for people: each variant has its own
    # expected answer (``Canary.expected_int8``), so it is no gate
    canary_diff: float | None
    limits: dict[str, float]  # max_abs_diff, auc_diff (cards before issue 23 also canary_diff)
    measured_with: str
    passed: bool
    refused: str | None = None
    # recipes of FP32 convolutions refused before this one (``quantize.RECIPES``), and why
    tried: list[str] = []


class Recipe(_Strict):
    command: str
    minutes: float
    measured: str | None = None


class Novelty(_Strict):
    """Where the training embeddings' distribution lies (``export.novelty``): the gateway
    warns when an answer's embedding is further than ``threshold`` (Mahalanobis) from it."""

    file: str  # relative to the card's folder: mean and precision matrix (npz)
    sha256: str
    n: int  # training ECGs it was fitted on
    threshold: float
    source: str  # what data, for people


class Canary(_Strict):
    """The known answer that proves the served pipeline works: ``file`` (next to the card) sent
    through the whole ensemble must come back with the served variant's expected answer (each
    task's positive-class probability) within ``tolerance``, absolute. ``expected`` is
    ``model.onnx``'s answer (what the GPU config's FP32/FP16 and the CPU config's FP32 serve);
    ``expected_int8`` is the INT8 variant's (``model.int8.onnx``), present when that variant
    passed its parity check (``ModelCard.int8``), and what the CPU config serves by default
    (``serving.precision``). Export computes both through the exported ONNX files and the real
    intake (``ecgscreen.export.canary``); the gateway's readiness, the ``serve`` supervisor and
    Kubernetes' liveness probe of Triton all ask this question of the variant Triton runs."""

    file: str  # relative to the card's folder
    sha256: str
    source: str  # where the file came from (a project sample), for people
    expected: dict[str, float]  # task -> positive-class probability, through model.onnx (FP32)
    # absolute; loose enough for onnxruntime CPU vs TensorRT FP16, tight enough for a wrong answer
    tolerance: float
    computed_with: str  # what produced the expected answers: the ONNX files and the intake, for people
    # through model.int8.onnx; absent when there is no INT8 variant that passed (or an older card)
    expected_int8: dict[str, float] | None = None

    @field_validator("expected", "expected_int8")
    @classmethod
    def _tasks_and_probabilities(cls, expected: dict[str, float] | None) -> dict[str, float] | None:
        if expected is None:
            return None
        if not expected or any(t not in TASKS or not 0.0 <= p <= 1.0 for t, p in expected.items()):
            raise ValueError(f"expected {expected} must map tasks of {list(TASKS)} to probabilities")
        return expected

    def expected_for(self, precision: str) -> dict[str, float]:
        """The expected answer of the network variant that runs: ``"int8"`` (the CPU config's
        INT8 variant) or ``"fp32"`` (``model.onnx``, also what FP16 is compared with). A card
        without ``expected_int8`` computed ``expected`` through the variant it served then."""
        if precision == "int8" and self.expected_int8 is not None:
            return self.expected_int8
        if precision not in ("int8", "fp32"):
            raise ValueError(f"precision {precision!r}: expected int8 or fp32")
        return self.expected

    def read(self, folder: Path) -> bytes:
        """The canary file's bytes; ``ValueError`` when it is missing or not the one recorded."""
        path = Path(folder) / self.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"canary file {path} cannot be read: {exc.strerror}") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError(f"canary file {path} is not the one the model card records (sha256 differs)")
        return data

    def problems(self, probabilities: Mapping[str, float], precision: str = "fp32") -> list[str]:
        """How an answer of the ``precision`` variant (``expected_for``) differs from its
        expected one (empty: the canary passed)."""
        out = []
        for task, expected in self.expected_for(precision).items():
            got = probabilities.get(task)
            if got is None:
                out.append(f"no {task} probability in the answer")
            elif not abs(float(got) - expected) <= self.tolerance:  # NaN fails too
                out.append(
                    f"{task} probability {float(got):.4f}, expected {expected:.4f} +- {self.tolerance} "
                    f"({precision.upper()})"
                )
        return out


class OperatingPoints(_Strict):
    """Decision thresholds and population averages, chosen on the validation split.

    ``from_validation`` is the only place they are derived: training stores them in its
    checkpoint (the same keys), export copies them into the card.
    """

    thresholds: dict[str, float]
    population_average: dict[str, float]
    fused_thresholds: dict[str, float] | None = None
    fused_population_average: dict[str, float] | None = None

    @classmethod
    def from_validation(cls, results: Mapping[str, Any]) -> OperatingPoints:
        """From ``evaluate`` results on ``val`` with the ``youden`` rule: each task's chosen
        threshold and its mean predicted probability."""
        fused = results.get("fused") or None
        return cls(
            thresholds={t: results[t]["threshold"] for t in results["tasks"]},
            population_average={t: results[t]["mean_probability"] for t in results["tasks"]},
            fused_thresholds={t: m["threshold"] for t, m in fused.items()} if fused else None,
            fused_population_average={t: m["mean_probability"] for t, m in fused.items()} if fused else None,
        )

    @classmethod
    def from_checkpoint(cls, meta: Mapping[str, Any]) -> OperatingPoints | None:
        """What a training checkpoint stored, or ``None`` for a run never evaluated."""
        if not meta.get("thresholds"):
            return None
        return cls.model_validate({k: meta[k] for k in cls.model_fields if meta.get(k) is not None})


def impute(clinical: np.ndarray, means: np.ndarray) -> np.ndarray:
    """``(N, 6)`` clinical features in ``CLINICAL_FEATURES`` order, missing ones (NaN) replaced
    by ``means``; float32, as the fusion head takes them."""
    clinical = np.asarray(clinical, dtype=np.float32)
    return np.where(np.isnan(clinical), np.asarray(means, dtype=np.float32), clinical).astype(np.float32)


class _CardFile(_Strict):
    """A card kept as ``model_card.json`` in its model's folder: read with every problem
    named, written atomically (a reader never sees half a card)."""

    _kind: ClassVar[str] = "model card"  # what the error calls it

    @classmethod
    def load(cls, folder: Path):
        """The card in ``folder`` (the model's folder, ``model_repository/<name>``);
        ``ValueError`` naming the file and every problem when it is missing or invalid."""
        path = Path(folder) / MODEL_CARD_FILE
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ValueError(f"no model card at {path}") from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(card)'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"{path} is not a valid {cls._kind}: {problems}") from None

    def save(self, folder: Path) -> Path:
        """Write ``folder/model_card.json`` atomically."""
        path = Path(folder) / MODEL_CARD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json", exclude_unset=True), indent=2) + "\n")
        os.replace(tmp, path)
        return path


class ModelCard(_CardFile):
    """``model_card.json``, typed. See the module docstring for the key policy."""

    name: str
    version: str
    created: str
    intended_use: str
    architecture: Architecture
    input_size: int
    # The normalisation inside model.onnx: (canonical / 255 - mean) / std per channel.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    tasks: list[str]
    task_descriptions: dict[str, str]
    thresholds: dict[str, float]
    threshold_source: str
    population_average: dict[str, float] | None
    population_average_source: str | None
    calibration: Calibration | None
    clinical: Clinical | None
    metrics: Metrics | None
    training_data: dict[str, Any] | None
    onnx: OnnxFile
    fusion_onnx: OnnxFile | None
    source: dict[str, Any]
    recipe: Recipe | None = None
    # The readiness canary (absent in cards written before it existed: then readiness falls
    # back to Triton's own model readiness; ``ecgscreen export --refresh-canary`` adds it).
    canary: Canary | None = None
    # The training embeddings' distribution (absent in cards exported before it existed: then
    # the gateway reports no novelty).
    novelty: Novelty | None = None
    # The INT8 variant for the CPU (absent: never quantized; then the CPU serves ``onnx``).
    int8: QuantizedFile | None = None
    # False for a clinical model imported from the study: it has no image-only answer, so
    # model.onnx answers with every clinical feature at its default and the gateway answers
    # only through the fusion head (its scar/lvef are null; README, "POST /predict").
    image_only_answer: bool = True

    @model_validator(mode="before")
    @classmethod
    def _current_input(cls, data: Any) -> Any:
        """A card whose network takes the old FP32 ``image`` says so, not "extra inputs"."""
        if (
            isinstance(data, Mapping)
            and isinstance(data.get("inputs"), Mapping)
            and MODEL_INPUT not in data["inputs"]
        ):
            raise ValueError(
                f"the network takes {sorted(data['inputs'])}, not the canonical image "
                f"({MODEL_INPUT}, UINT8 [batch, S, S]) this version serves: it was exported by an older "
                "version; export it again (ecgscreen export / ecgscreen import-mtecg)"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(f"tasks {self.tasks} must be a non-empty subset of {list(TASKS)}")
        if set(self.thresholds) != set(self.tasks):
            raise ValueError(f"thresholds {sorted(self.thresholds)} must be given for tasks {self.tasks}")
        return self

    # -- files -----------------------------------------------------------------------------

    # -- what consumers ask ------------------------------------------------------------------

    def threshold(self, task: str, fused: bool = False) -> float:
        """The decision threshold of ``task`` (the fusion head's own when it has one)."""
        if fused and self.clinical and self.clinical.fused_thresholds:
            return float(self.clinical.fused_thresholds[task])
        return float(self.thresholds[task])

    def average(self, task: str, fused: bool = False) -> float | None:
        """Mean predicted probability of ``task`` on the validation split, if known."""
        if fused:
            averages = self.clinical.fused_population_average if self.clinical else None
        else:
            averages = self.population_average
        return float(averages[task]) if averages and task in averages else None

    def imputation_means(self) -> np.ndarray:
        """The training means of the clinical features, in ``CLINICAL_FEATURES`` order."""
        if self.clinical is None:
            raise ValueError(f"model {self.name} has no clinical fusion head, so no imputation means")
        return np.array([self.clinical.imputation_means[f] for f in CLINICAL_FEATURES], dtype=np.float32)

    def impute(self, clinical: np.ndarray) -> np.ndarray:
        """``impute`` with this card's means: what the served fusion head is given."""
        return impute(clinical, self.imputation_means())

    def set_operating_points(
        self, points: OperatingPoints | None, threshold_source: str, average_source: str
    ) -> None:
        """Thresholds and averages from validation (``None``: not evaluated, thresholds 0.5)."""
        if points is None:
            self.thresholds = {t: 0.5 for t in self.tasks}
            self.threshold_source = "default 0.5 (not evaluated)"
            self.population_average = None
            self.population_average_source = None
            return
        self.thresholds = points.thresholds
        self.threshold_source = threshold_source
        self.population_average = points.population_average
        self.population_average_source = average_source
        if self.clinical is not None:
            self.clinical.fused_thresholds = points.fused_thresholds
            self.clinical.fused_population_average = points.fused_population_average

    def triton_config_problems(self, repository: Path) -> list[str]:
        """``triton_config_problems`` for this card's tensors."""
        return triton_config_problems(Path(repository), self.inputs, self.outputs)


# -- the Triton configs follow the card --------------------------------------------------------


def _dims(spec: TensorSpec) -> list[int]:
    return spec.shape[1:]  # without the batch axis, as Triton configs list them


def triton_config_problems(
    repository: Path, inputs: Mapping[str, TensorSpec], outputs: Mapping[str, TensorSpec]
) -> list[str]:
    """Every way the Triton configs in ``repository`` disagree with the network's tensors
    (empty when they agree, or when the repository holds no configs).

    * ``MODEL_NAME`` (``config.pbtxt`` and every ``configs/*.pbtxt``): the same inputs and
      outputs, dtypes and dims as the card; warm-up inputs the input's dims;
    * ``PREPROCESS_NAME`` (both configs): its ``MODEL_INPUT`` output is the network's input (the canonical
      image, UINT8 size x size), its ``ENSEMBLE_CANONICAL`` output the same picture;
    * ``ENSEMBLE_NAME``: each output the dims of the model output it is mapped from.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    produced = {  # (model, output) -> (dtype, dims) as the card says they are
        **{(MODEL_NAME, name): (spec.dtype, _dims(spec)) for name, spec in outputs.items()},
        (PREPROCESS_NAME, MODEL_INPUT): (inputs[MODEL_INPUT].dtype, _dims(inputs[MODEL_INPUT])),
        (PREPROCESS_NAME, ENSEMBLE_CANONICAL): (inputs[MODEL_INPUT].dtype, _dims(inputs[MODEL_INPUT])),
    }
    problems: list[str] = []

    def load(path: Path):
        return text_format.Parse(path.read_text(), mc.ModelConfig())

    def compare(where: str, kind: str, name: str, tensor, expected: tuple[str, list[int]]) -> None:
        got = (mc.DataType.Name(tensor.data_type).removeprefix("TYPE_"), list(tensor.dims))
        if got != expected:
            problems.append(
                f"{where}: {kind} {name} is {got[0]} {got[1]}, the model card says {expected[0]} {expected[1]}"
            )

    model_dir = repository / MODEL_NAME
    for path in [model_dir / "config.pbtxt", *sorted(model_dir.glob("configs/*.pbtxt"))]:
        if not path.is_file():
            continue
        where, config = str(path.relative_to(repository)), load(path)
        for kind, specs, tensors in (("input", inputs, config.input), ("output", outputs, config.output)):
            names = {t.name for t in tensors}
            if names != set(specs):
                problems.append(f"{where}: {kind}s {sorted(names)}, the model card has {sorted(specs)}")
            for tensor in tensors:
                if tensor.name in specs:
                    compare(
                        where,
                        kind,
                        tensor.name,
                        tensor,
                        (specs[tensor.name].dtype, _dims(specs[tensor.name])),
                    )
        for warmup in config.model_warmup:
            for name, tensor in warmup.inputs.items():
                if name in inputs:
                    compare(
                        where,
                        f"warm-up {warmup.name} input",
                        name,
                        tensor,
                        (inputs[name].dtype, _dims(inputs[name])),
                    )

    preprocess_dir = repository / PREPROCESS_NAME
    for path in [preprocess_dir / "config.pbtxt", *sorted(preprocess_dir.glob("configs/*.pbtxt"))]:
        if not path.is_file():
            continue
        for tensor in load(path).output:
            if (PREPROCESS_NAME, tensor.name) in produced:
                compare(
                    str(path.relative_to(repository)),
                    "output",
                    tensor.name,
                    tensor,
                    produced[PREPROCESS_NAME, tensor.name],
                )

    path = repository / ENSEMBLE_NAME / "config.pbtxt"
    if path.is_file():
        where, config = str(path.relative_to(repository)), load(path)
        expected: dict[str, tuple[str, list[int]]] = {}
        for step in config.ensemble_scheduling.step:
            for model_output, tensor_name in step.output_map.items():
                if (step.model_name, model_output) in produced:
                    expected[tensor_name] = produced[step.model_name, model_output]
                elif step.model_name == MODEL_NAME:
                    problems.append(
                        f"{where}: maps {MODEL_NAME} output {model_output}, which the model does not have"
                    )
        for tensor in config.output:
            if tensor.name in expected:
                compare(where, "output", tensor.name, tensor, expected[tensor.name])
    return problems
