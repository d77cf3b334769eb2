"""``ecgscreen export``: a trained model into the Triton repository, with its model card.

Contract (the Triton configs and the gateway are written against these names)::

    MODEL/1/model.onnx    image FP32 [B,3,S,S]  ->  scar_probability FP32 [B,1]
                                                    lvef_probability FP32 [B,1]
                                                    logits           FP32 [B,2T] (per task: neg, pos)
                                                    embedding        FP32 [B,512]
                                                    cam              FP32 [B,T,S/32,S/32]
    MODEL/fusion.onnx     embedding FP32 [B,512], clinical FP32 [B,6]
                          (age, female_gender, dm, ht, smoke, dlp; already imputed)
                                                -> scar_probability, lvef_probability FP32 [B,1]
    MODEL/model_card.json

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

from ..contract import CLINICAL_FEATURES, INTENDED_USE, MODEL_NAME, TASK_DESCRIPTIONS
from ..nets.cam import CamModel
from ..nets.multitask import ClinicalFusion, MultiTaskNet
from ..training.checkpoint import RunModel, load_run_model

__all__ = [
    "OPSET",
    "ImageGraph",
    "FusionGraph",
    "export_image_onnx",
    "export_fusion_onnx",
    "export_model",
    "export_run",
    "evaluate_export",
]

log = logging.getLogger(__name__)

OPSET = 17
CARD_METRIC_KEYS = ("auc", "auc_ci95", "sensitivity", "specificity", "ppv", "npv", "ece", "brier", "n", "prevalence",
                    "threshold", "threshold_rule")  # fmt: skip


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
    """``image`` -> ``(*<task>_probability, logits, embedding, cam)`` for export.

    ``input_mean``/``input_std`` describe how the served input is normalised (ImageNet, by
    ``to_model_input``); when the model was trained with another normalisation the graph
    converts, so the served input never changes.
    """

    def __init__(self, model: MultiTaskNet, input_mean=None, input_std=None, calibration=None):
        super().__init__()
        self.cam_model = CamModel(model.eval())
        self.tasks = model.tasks
        self.register_buffer("platt", _platt_buffer(self.tasks, calibration))
        model_mean = torch.tensor(model.config["mean"], dtype=torch.float32)
        model_std = torch.tensor(model.config["std"], dtype=torch.float32)
        in_mean = model_mean if input_mean is None else torch.tensor(input_mean, dtype=torch.float32)
        in_std = model_std if input_std is None else torch.tensor(input_std, dtype=torch.float32)
        self.adapt = not (torch.equal(in_mean, model_mean) and torch.equal(in_std, model_std))
        self.register_buffer("scale", (in_std / model_std).view(1, 3, 1, 1))
        self.register_buffer("shift", ((in_mean - model_mean) / model_std).view(1, 3, 1, 1))

    @property
    def output_names(self) -> list[str]:
        return [f"{t}_probability" for t in self.tasks] + ["logits", "embedding", "cam"]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = image * self.scale + self.shift if self.adapt else image
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


def export_image_onnx(
    model: MultiTaskNet, path: Path, input_mean=None, input_std=None, calibration=None
) -> dict[str, Any]:
    """Write the image model's ONNX; check it against torch on random inputs."""
    import onnxruntime as ort

    graph = ImageGraph(model.cpu(), input_mean, input_std, calibration).eval()
    size = int(model.config["image_size"])
    _export(graph, (torch.randn(2, 3, size, size),), path, ["image"], graph.output_names)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = [t.numpy() for t in graph(x)]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
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


def _card_metrics(results: dict[str, Any] | None) -> dict[str, Any] | None:
    if not results:
        return None
    trim = lambda ms: {t: {k: m.get(k) for k in CARD_METRIC_KEYS} for t, m in ms.items()}  # noqa: E731
    out = {
        "split": results.get("split"),
        "n": results.get("n"),
        **trim({t: results[t] for t in results["tasks"]}),
    }
    if results.get("fused"):
        out["fused"] = trim(results["fused"])
    if (results.get("subsets") or {}).get("clean_vs_hardest"):
        out["clean_vs_hardest"] = results["subsets"]["clean_vs_hardest"]
    return out


def export_model(
    run: RunModel,
    repository: Path,
    name: str = MODEL_NAME,
    version: int = 1,
    input_mean=None,
    input_std=None,
    source: dict[str, Any] | None = None,
    test_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model.onnx``, ``fusion.onnx`` (if the run has a fusion head) and the model card.

    Thresholds and population averages come from ``run.meta`` (validation); without them the
    thresholds are 0.5 and the card says so.
    """
    model, fusion, meta = run.model.eval(), run.fusion, run.meta
    folder = Path(repository) / name
    onnx_path = folder / str(version) / "model.onnx"
    size = int(model.config["image_size"])
    calibration = meta.get("calibration") or {}
    onnx_info = export_image_onnx(model, onnx_path, input_mean, input_std, calibration.get("image"))
    fusion_path = folder / "fusion.onnx"
    fusion_info = None
    if fusion is not None:
        fusion_info = export_fusion_onnx(fusion, fusion_path, calibration.get("fused"))
    elif fusion_path.exists():
        log.warning("removing %s: the exported model has no fusion head", fusion_path)
        fusion_path.unlink()
    thresholds = meta.get("thresholds")
    mean = list(input_mean) if input_mean is not None else model.config["mean"]
    std = list(input_std) if input_std is not None else model.config["std"]
    h = size // 32
    card = {
        "name": name,
        "version": str(version),
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "intended_use": INTENDED_USE,
        "architecture": {
            "backbone": model.config["backbone"],
            "embedding": f"fc {model.backbone.num_features} -> {model.config['embed_dim']}, ReLU",
            "heads": {t: f"Linear({model.config['embed_dim']}, 2)" for t in model.tasks},
            "parameters": sum(p.numel() for p in model.parameters()),
            "cam": "Grad-CAM++ in closed form on the last conv block (exp(score) formulation, positive class)",
            "normalisation_adapter_in_graph": ImageGraph(model, input_mean, input_std).adapt,
        },
        "input_size": size,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "inputs": {"image": {"dtype": "FP32", "shape": [-1, 3, size, size]}},
        "outputs": {
            **{f"{t}_probability": {"dtype": "FP32", "shape": [-1, 1]} for t in model.tasks},
            "logits": {"dtype": "FP32", "shape": [-1, 2 * len(model.tasks)],
                       "order": [f"{t}_{c}" for t in model.tasks for c in ("negative", "positive")]},
            "embedding": {"dtype": "FP32", "shape": [-1, model.config["embed_dim"]]},
            "cam": {"dtype": "FP32", "shape": [-1, len(model.tasks), h, h], "order": list(model.tasks)},
        },  # fmt: skip
        "tasks": list(model.tasks),
        "task_descriptions": dict(TASK_DESCRIPTIONS),
        "thresholds": thresholds or {t: 0.5 for t in model.tasks},
        "threshold_source": "Youden index on the validation split" if thresholds else "default 0.5 (not evaluated)",
        "population_average": meta.get("population_average"),
        "population_average_source": "mean predicted probability on the validation split"
        if meta.get("population_average") else None,
        "calibration": calibration or None,
        "clinical": None,
        "metrics": _card_metrics(test_metrics),
        "training_data": meta.get("data"),
        "onnx": {"file": f"{version}/model.onnx", **onnx_info},
        "fusion_onnx": None,
        "source": source or {},
    }  # fmt: skip
    if fusion is not None:
        card["clinical"] = {
            "features": list(CLINICAL_FEATURES),
            "imputation_means": {
                f: float(v) for f, v in zip(CLINICAL_FEATURES, fusion.clinical_mean.tolist(), strict=True)
            },
            "imputation": "missing features are replaced by the training-split means above before fusion.onnx",
            "fusion": "fusion.onnx",
            "fused_thresholds": meta.get("fused_thresholds"),
            "fused_population_average": meta.get("fused_population_average"),
        }
        card["fusion_onnx"] = {"file": "fusion.onnx", **fusion_info}
    card_path = folder / "model_card.json"
    tmp = card_path.with_name(f".{card_path.name}.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, card_path)
    log.info("exported %s (%d bytes) and %s", onnx_path, onnx_info["bytes"], card_path)
    return card


def export_run(run_dir: Path, repository: Path, name: str = MODEL_NAME, version: int = 1) -> dict[str, Any]:
    """Export a training run (folder or checkpoint) with its validation thresholds and test metrics."""
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
    return export_model(run, repository, name, version, source=source, test_metrics=test_metrics)


def evaluate_export(
    repository: Path,
    data_dir: Path,
    name: str = MODEL_NAME,
    loader=None,
    cache_dir: Path | None = None,
    n_bootstrap: int = 1000,
    progress=None,
) -> dict[str, Any]:
    """Evaluate the exported ONNX itself and write the results into its model card:
    thresholds (Youden) and population averages from ``val``, metrics from ``test`` at those
    thresholds."""
    from ..training.evaluate import evaluate

    folder = Path(repository) / name
    card_path = folder / "model_card.json"
    card = json.loads(card_path.read_text())
    val = evaluate(folder, data_dir, None, "val", "youden", loader=loader, cache_dir=cache_dir,
                   n_bootstrap=n_bootstrap, progress=progress)  # fmt: skip
    card["thresholds"] = {t: val[t]["threshold"] for t in val["tasks"]}
    card["threshold_source"] = "Youden index on the validation split (exported ONNX)"
    card["population_average"] = {t: val[t]["mean_probability"] for t in val["tasks"]}
    card["population_average_source"] = f"mean predicted probability on the validation split (n={val['n']})"
    if card.get("clinical") and val.get("fused"):
        card["clinical"]["fused_thresholds"] = {t: m["threshold"] for t, m in val["fused"].items()}
        card["clinical"]["fused_population_average"] = {
            t: m["mean_probability"] for t, m in val["fused"].items()
        }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    test = evaluate(folder, data_dir, None, "test", "model", loader=loader, cache_dir=cache_dir,
                    n_bootstrap=n_bootstrap, progress=progress)  # fmt: skip
    card["metrics"] = _card_metrics(test)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card
