"""``ecgscreen export``: a trained model into the Triton repository, with its model card.

Contract (the Triton configs and the gateway are written against these names)::

    MODEL/1/model.onnx    canonical UINT8 [B,S,S]  ->  scar_probability FP32 [B,1]
                                                       lvef_probability FP32 [B,1]
                                                       logits           FP32 [B,2T] (per task: neg, pos)
                                                       embedding        FP32 [B,512]
                                                       cam              FP32 [B,T,S/32,S/32]
    MODEL/fusion.onnx     embedding FP32 [B,512], clinical FP32 [B,6]
                          (age, female_gender, dm, ht, smoke, dlp; already imputed)
                                                -> scar_probability, lvef_probability FP32 [B,1]
    MODEL/model_card.json
    MODEL/canary.dcm      the readiness canary (its expected answer is in the card)

The input is the canonical image exactly as intake draws it (``imaging.canonical``: 0 ink,
255 paper). The graph replicates it to three channels and normalises it with the model's own
mean and std (``(x / 255 - mean) / std``, the same float operations as
``imaging.canonical.to_model_input`` for ImageNet's), so every consumer hands the network the
same bytes whatever normalisation it was trained with, and on a GPU the conversion runs there.
``T`` is the number of tasks (2 for the multi-task default; a single-task model exports only
its own probability). ONNX opset 17, dynamic batch. Probabilities are the softmax positive
class; ``cam`` is closed-form Grad-CAM++ (``ecgscreen.nets.cam``), index 0 scar, 1 lvef.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..card import (
    Architecture,
    Calibration,
    Clinical,
    Metrics,
    ModelCard,
    OnnxFile,
    OperatingPoints,
    TensorSpec,
    triton_config_problems,
)
from ..contract import (
    CLINICAL_FEATURES,
    FEATURE_STRIDE,
    FUSION_FILE,
    INT8_MODEL_FILE,
    INTENDED_USE,
    MODEL_CARD_FILE,
    MODEL_INPUT,
    MODEL_NAME,
    TASK_DESCRIPTIONS,
    probability_output,
)
from ..nets.cam import CamModel
from ..nets.multitask import ClinicalFusion, MultiTaskNet
from ..training.checkpoint import RunModel, load_run_model
from .canary import compute_canary
from .novelty import fit_novelty
from .quantize import Int8Options, quantize_export
from .triton_configs import sync_triton_configs

__all__ = [
    "OPSET",
    "ImageGraph",
    "FusionGraph",
    "export_image_onnx",
    "export_fusion_onnx",
    "tensor_specs",
    "export_model",
    "export_run",
    "evaluate_export",
]

log = logging.getLogger(__name__)

OPSET = 17


def _platt_buffer(tasks, calibration: dict[str, list[float]] | None) -> torch.Tensor:
    """(T, 2) Platt parameters (a, b) per task; identity where none were fitted."""
    calibration = calibration or {}
    return torch.tensor([calibration.get(t, [1.0, 0.0]) for t in tasks], dtype=torch.float32)


def _probabilities(logits: torch.Tensor, platt: torch.Tensor) -> list[torch.Tensor]:
    """Positive-class probability per task: sigmoid(a * (l_pos - l_neg) + b), which is the
    softmax of the pair when (a, b) = (1, 0)."""
    out = []
    for i in range(platt.shape[0]):
        margin = logits[:, 2 * i + 1 : 2 * i + 2] - logits[:, 2 * i : 2 * i + 1]
        out.append(torch.sigmoid(platt[i, 0] * margin + platt[i, 1]))
    return out


class ImageGraph(nn.Module):
    """``canonical`` (uint8 ``(B, S, S)``) -> ``(*<task>_probability, logits, embedding, cam)``
    for export: the model's normalisation (``model.config["mean"]``/``["std"]``) is the first
    step of the graph."""

    def __init__(self, model: MultiTaskNet, calibration=None):
        super().__init__()
        self.cam_model = CamModel(model.eval())
        self.tasks = model.tasks
        self.register_buffer("platt", _platt_buffer(self.tasks, calibration))
        self.register_buffer("mean", torch.tensor(model.config["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(model.config["std"], dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def output_names(self) -> list[str]:
        return [f"{t}_probability" for t in self.tasks] + ["logits", "embedding", "cam"]

    def forward(self, canonical: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # grey (B, 1, S, S) broadcast against the per-channel statistics: (B, 3, S, S)
        x = (canonical.unsqueeze(1).to(torch.float32) / 255.0 - self.mean) / self.std
        logits, embedding, cam = self.cam_model(x)
        return (*_probabilities(logits, self.platt), logits, embedding, cam)


class FusionGraph(nn.Module):
    """``(embedding, clinical)`` -> ``<task>_probability`` for each task, for export."""

    def __init__(self, fusion: ClinicalFusion, calibration=None):
        super().__init__()
        self.fusion = fusion.eval()
        self.register_buffer("platt", _platt_buffer(fusion.tasks, calibration))

    @property
    def output_names(self) -> list[str]:
        return [f"{t}_probability" for t in self.fusion.tasks]

    def forward(self, embedding: torch.Tensor, clinical: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(_probabilities(self.fusion(embedding, clinical), self.platt))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _export(
    graph: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str]
) -> None:
    import warnings

    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dynamic = {name: {0: "batch"} for name in input_names + output_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            graph, args, str(tmp), input_names=input_names, output_names=output_names,
            opset_version=OPSET, dynamic_axes=dynamic, do_constant_folding=True, dynamo=False,
        )  # fmt: skip
    onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    os.replace(tmp, path)


def _verified(path: Path, expected, got, tolerance: float) -> dict[str, Any]:
    """The exported file's description, once onnxruntime's outputs match torch's."""
    diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))
    if diff > tolerance:
        raise RuntimeError(f"ONNX export of {path} differs from torch by {diff}")
    return {
        "sha256": _sha256(path),
        "bytes": path.stat().st_size,
        "opset": OPSET,
        "max_abs_diff_vs_torch": diff,
    }


def export_image_onnx(model: MultiTaskNet, path: Path, calibration=None) -> dict[str, Any]:
    """Write the image model's ONNX; check it against torch on random canonical images."""
    import onnxruntime as ort

    graph = ImageGraph(model.cpu(), calibration).eval()
    size = int(model.config["image_size"])
    example = torch.randint(0, 256, (2, size, size), dtype=torch.uint8)
    _export(graph, (example,), path, [MODEL_INPUT], graph.output_names)
    x = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = [t.numpy() for t in graph(x)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {MODEL_INPUT: x.numpy()})
    return _verified(path, expected, got, tolerance=1e-3)


def export_fusion_onnx(fusion: ClinicalFusion, path: Path, calibration=None) -> dict[str, Any]:
    import onnxruntime as ort

    graph = FusionGraph(fusion.cpu(), calibration).eval()
    embed_dim = fusion.config["embed_dim"]
    example = (torch.rand(2, embed_dim), fusion.clinical_mean.expand(2, -1).clone())
    _export(graph, example, path, ["embedding", "clinical"], graph.output_names)
    gen = torch.Generator().manual_seed(0)
    emb = torch.rand(3, embed_dim, generator=gen)
    clin = torch.tensor([[40.0, 0, 0, 1, 0, 1], [71.0, 1, 1, 1, 1, 0], [55.0, 0.4, 0.2, 0.5, 0.3, 0.4]])
    with torch.no_grad():
        expected = [t.numpy() for t in graph(emb, clin)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"embedding": emb.numpy(), "clinical": clin.numpy()})
    return _verified(path, expected, got, tolerance=1e-4)


def tensor_specs(model: MultiTaskNet) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """The exported graph's inputs and outputs, as the model card records them."""
    size, tasks, embed_dim = int(model.config["image_size"]), model.tasks, model.config["embed_dim"]
    h = size // FEATURE_STRIDE
    inputs = {MODEL_INPUT: TensorSpec(dtype="UINT8", shape=[-1, size, size])}
    outputs = {
        **{probability_output(t): TensorSpec(dtype="FP32", shape=[-1, 1]) for t in tasks},
        "logits": TensorSpec(dtype="FP32", shape=[-1, 2 * len(tasks)],
                             order=[f"{t}_{c}" for t in tasks for c in ("negative", "positive")]),
        "embedding": TensorSpec(dtype="FP32", shape=[-1, embed_dim]),
        "cam": TensorSpec(dtype="FP32", shape=[-1, len(tasks), h, h], order=list(tasks)),
    }  # fmt: skip
    return inputs, outputs


def export_model(
    run: RunModel,
    repository: Path,
    name: str = MODEL_NAME,
    version: int = 1,
    source: dict[str, Any] | None = None,
    test_metrics: dict[str, Any] | None = None,
    int8: Int8Options | None = None,
) -> ModelCard:
    """Write ``model.onnx``, ``fusion.onnx`` (if the run has a fusion head) and the model card;
    with ``int8``, also the INT8 variant for the CPU when it passes its parity check
    (``export.quantize``; the card's ``int8`` says what was measured either way).

    Thresholds and population averages come from ``run.meta`` (validation); without them the
    thresholds are 0.5 and the card says so. When ``repository`` holds Triton configs for the
    model, the ensemble or intake, they must fit the model (same tensors and dims as its
    card): otherwise nothing is written and ``ValueError`` lists every disagreement.
    """
    model, fusion, meta = run.model.eval(), run.fusion, run.meta
    folder = Path(repository) / name
    inputs, outputs = tensor_specs(model)
    if name == MODEL_NAME:  # a single-task model has fewer outputs than the configs' default
        for path in sync_triton_configs(Path(repository), outputs):
            log.info("%s now lists the model's outputs (%s)", path, ", ".join(outputs))
    if name == MODEL_NAME and (problems := triton_config_problems(Path(repository), inputs, outputs)):
        raise ValueError(
            f"the Triton configs in {repository} do not fit this model; edit them or export into another "
            "repository:\n  " + "\n  ".join(problems)
        )
    onnx_path = folder / str(version) / "model.onnx"
    calibration = meta.get("calibration") or {}
    onnx_info = export_image_onnx(model, onnx_path, calibration.get("image"))
    fusion_path = folder / FUSION_FILE
    fusion_info = None
    if fusion is not None:
        fusion_info = export_fusion_onnx(fusion, fusion_path, calibration.get("fused"))
    elif fusion_path.exists():
        log.warning("removing %s: the exported model has no fusion head", fusion_path)
        fusion_path.unlink()
    clinical = None
    if fusion is not None:
        means = fusion.clinical_mean.tolist()
        clinical = Clinical(
            features=list(CLINICAL_FEATURES),
            imputation_means={f: float(v) for f, v in zip(CLINICAL_FEATURES, means, strict=True)},
            imputation=meta.get("imputation")
            or f"missing features are replaced by the training-split means above before {FUSION_FILE}",
            fusion=FUSION_FILE,
            fused_thresholds=None,
            fused_population_average=None,
        )
    card = ModelCard(
        name=name,
        version=str(version),
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        intended_use=INTENDED_USE,
        architecture=Architecture(
            backbone=model.config["backbone"],
            embedding=f"fc {model.backbone.num_features} -> {model.config['embed_dim']}"
            + (", ReLU" if model.config.get("embedding_relu", True) else " (no ReLU)"),
            heads={t: f"Linear({model.config['embed_dim']}, 2)" for t in model.tasks},
            parameters=sum(p.numel() for p in model.parameters()),
            cam="Grad-CAM++ in closed form on the last conv block (exp(score) formulation, positive class)",
        ),
        input_size=int(model.config["image_size"]),
        mean=[float(v) for v in model.config["mean"]],
        std=[float(v) for v in model.config["std"]],
        inputs=inputs,
        outputs=outputs,
        tasks=list(model.tasks),
        task_descriptions=dict(TASK_DESCRIPTIONS),
        thresholds={t: 0.5 for t in model.tasks},
        threshold_source="",
        population_average=None,
        population_average_source=None,
        calibration=Calibration.model_validate(calibration) if calibration else None,
        clinical=clinical,
        metrics=Metrics.from_results(test_metrics),
        training_data=meta.get("data"),
        onnx=OnnxFile(file=f"{version}/model.onnx", **onnx_info),
        fusion_onnx=OnnxFile(file=FUSION_FILE, **fusion_info) if fusion_info else None,
        source=source or {},
    )
    if meta.get("image_only_answer") is False:  # the study's clinical models (export.mtecg)
        card.image_only_answer = False
    card.set_operating_points(
        OperatingPoints.from_checkpoint(meta),
        "Youden index on the validation split",
        "mean predicted probability on the validation split",
    )
    card.save(folder)
    # The readiness canary's answer comes from this very ONNX and the intake (never by hand).
    card.canary = compute_canary(folder)
    card.save(folder)
    log.info("exported %s (%d bytes) and %s", onnx_path, onnx_info["bytes"], folder / MODEL_CARD_FILE)
    stale = onnx_path.with_name(INT8_MODEL_FILE)
    if int8 is not None:
        card = quantize_export(repository, name, int8)
    elif stale.exists():
        log.warning("removing %s: it quantized the previous export", stale)
        stale.unlink()
    return card


def export_run(
    run_dir: Path, repository: Path, name: str = MODEL_NAME, version: int = 1, int8: Int8Options | None = None
) -> ModelCard:
    """Export a training run (folder or checkpoint) with its validation thresholds and test metrics
    (and, with ``int8``, its INT8 variant: ``export_model``)."""
    run_dir = Path(run_dir)
    run = load_run_model(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    test_metrics = None
    metrics_path = folder / "eval" / "test" / "metrics.json"
    if metrics_path.is_file():
        test_metrics = json.loads(metrics_path.read_text())
    else:
        log.warning("%s not found: the model card will carry no test metrics", metrics_path)
    source = {
        "kind": "ecgscreen-run",
        "run": folder.resolve().name,
        "train_config": run.meta.get("train_config"),
    }
    return export_model(run, repository, name, version, source=source, test_metrics=test_metrics, int8=int8)


def evaluate_export(
    repository: Path,
    data_dir: Path,
    name: str = MODEL_NAME,
    loader=None,
    cache_dir: Path | None = None,
    n_bootstrap: int = 1000,
    progress=None,
) -> ModelCard:
    """Evaluate the exported ONNX itself and write the results into its model card:
    thresholds (Youden) and population averages from ``val``, metrics from ``test`` at those
    thresholds, and the distribution of ``train``'s embeddings (``export.novelty``)."""
    from ..training.evaluate import evaluate

    folder = Path(repository) / name
    card = ModelCard.load(folder)
    val = evaluate(folder, data_dir, None, "val", "youden", loader=loader, cache_dir=cache_dir,
                   n_bootstrap=n_bootstrap, progress=progress)  # fmt: skip
    card.set_operating_points(
        OperatingPoints.from_validation(val),
        "Youden index on the validation split (exported ONNX)",
        f"mean predicted probability on the validation split (n={val['n']})",
    )
    card.save(folder)
    test = evaluate(folder, data_dir, None, "test", "model", loader=loader, cache_dir=cache_dir,
                    n_bootstrap=n_bootstrap, progress=progress)  # fmt: skip
    card.metrics = Metrics.from_results(test)
    card.save(folder)
    return fit_novelty(repository, data_dir, "train", name=name)
