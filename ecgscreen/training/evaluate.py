"""``ecgscreen evaluate``: the study's metrics, with bootstrap CIs, plots and subset AUCs.

Writes into ``out``: ``metrics.json`` (``tasks``: the task names; then per task, under its
name: ``auc``, ``auc_ci95``, ``sensitivity``,
``specificity``, ``ppv``, ``npv`` at the chosen threshold, prevalence-adjusted PPV/NPV when a
prevalence is given, ``ece`` (10 bins), ``brier``, ``n``, ``prevalence``, ``threshold``,
``mean_probability``; the same under ``fused`` for a clinical model; AUC per subset of the
``format`` / ``layout`` / ``grid`` / ``acquisition`` columns), ``roc.png``,
``calibration.png``, ``table.md`` (the study's table) and ``predictions.csv``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import TASK_NAMES
from . import metrics as M
from .data import Labels, Loader, RowView, build_cache, read_labels
from .predictors import Predictions, TorchPredictor, load_predictor

__all__ = [
    "SUBSET_COLUMNS",
    "task_metrics",
    "subset_aucs",
    "markdown_table",
    "evaluate_predictions",
    "evaluate",
]

log = logging.getLogger(__name__)

SUBSET_COLUMNS = ("format", "layout", "grid", "acquisition")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN becomes null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def task_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: str | float = "youden",
    prevalence: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    rule_name: str | None = None,
) -> dict[str, Any]:
    """Every metric of one task; ``threshold`` is a rule (``choose_threshold``) or a number
    (named ``rule_name`` in the output)."""
    labels = np.asarray(labels).astype(bool)
    p = np.asarray(probabilities, dtype=float)
    out: dict[str, Any] = {"n": int(labels.size), "prevalence": float(labels.mean()) if labels.size else None}
    both = labels.any() and not labels.all()
    if both:
        out["auc"] = M.roc_auc(labels, p)
        out["auc_ci95"] = list(M.bootstrap_auc_ci(labels, p, n_bootstrap, seed))
    else:
        out["auc"], out["auc_ci95"] = None, None
    if isinstance(threshold, str):
        t = M.choose_threshold(labels, p, threshold) if both or threshold.startswith("fixed") else 0.5
    else:
        t = float(threshold)
    out["threshold"] = t
    out["threshold_rule"] = threshold if isinstance(threshold, str) else (rule_name or "given")
    counts = M.binary_metrics(labels, p, t)
    out.update({k: counts[k] for k in ("sensitivity", "specificity", "ppv", "npv")})
    out["confusion"] = {k: counts[k] for k in ("tp", "fp", "tn", "fn")}
    if prevalence is not None:
        ppv, npv = M.adjusted_predictive_values(counts["sensitivity"], counts["specificity"], prevalence)
        out["adjusted"] = {"prevalence": prevalence, "ppv": ppv, "npv": npv}
    out["ece"] = M.expected_calibration_error(labels, p, 10) if labels.size else None
    out["brier"] = M.brier_score(labels, p) if labels.size else None
    out["mean_probability"] = float(p.mean()) if p.size else None
    return out


def subset_aucs(
    labels: Labels, indices: np.ndarray, preds: Predictions, columns: Sequence[str] = SUBSET_COLUMNS
):
    """AUC per value of each subset column present (``None`` where a subset lacks a class).

    ``acquisition`` also gets ``clean_vs_hardest``: the clean subset's AUC next to the
    lowest-AUC other subset, per task.
    """
    out: dict[str, Any] = {}
    present = [c for c in columns if c in labels.columns]
    for column in present:
        values = np.array([labels.rows[i].get(column) or "(none)" for i in indices])
        table: dict[str, Any] = {}
        for value in sorted(set(values)):
            mask = values == value
            entry: dict[str, Any] = {"n": int(mask.sum())}
            for task, p in preds.image.items():
                y = labels.targets(task)[indices][mask]
                entry[task] = M.roc_auc(y, p[mask]) if 0 < y.sum() < y.size else None
            table[value] = entry
        if len(table) > 1:
            out[column] = table
    if "acquisition" in out and "clean" in out["acquisition"]:
        acq = out["acquisition"]
        summary = {}
        for task in preds.image:
            others = {v: e[task] for v, e in acq.items() if v != "clean" and e[task] is not None}
            hardest = min(others, key=others.get) if others else None
            summary[task] = {
                "clean": acq["clean"][task],
                "hardest": hardest,
                "hardest_auc": others.get(hardest) if hardest else None,
            }
        out["clean_vs_hardest"] = summary
    return out


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The study's table: AUC (95% CI), sensitivity, specificity, PPV, NPV per task."""
    lines = [
        "| Task | AUC (95% CI) | Sensitivity (%) | Specificity (%) | PPV (%) | NPV (%) | n |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [(TASK_NAMES[t], results[t]) for t in results["tasks"]]
    rows += [(f"{TASK_NAMES[t]} + clinical", m) for t, m in (results.get("fused") or {}).items()]
    for title, m in rows:
        ci = m["auc_ci95"] or [None, None]
        auc = f"{_fmt(m['auc'])} ({_fmt(ci[0])}–{_fmt(ci[1])})"
        cells = [_fmt(m[k], pct=True) for k in ("sensitivity", "specificity", "ppv", "npv")]
        lines.append(f"| {title} | {auc} | " + " | ".join(cells) + f" | {m['n']} |")
    return "\n".join(lines) + "\n"


def _plots(out: Path, labels: Labels, indices: np.ndarray, preds: Predictions) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"scar": "C0", "lvef": "C3"}
    curves = [(t, p, "-") for t, p in preds.image.items()]
    curves += [(t, p, "--") for t, p in (preds.fused or {}).items()]
    fig, ax = plt.subplots(figsize=(5, 5))
    for task, p, style in curves:
        y = labels.targets(task)[indices]
        if 0 < y.sum() < y.size:
            fpr, tpr, _ = M.roc_curve(y, p)
            name = TASK_NAMES[task] + (" + clinical" if style == "--" else "")
            ax.plot(fpr, tpr, style, color=colors[task], label=f"{name} (AUC {M.roc_auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="Sensitivity", title="ROC", xlim=(0, 1), ylim=(0, 1))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for task, p, style in curves:
        mean_p, rate = M.calibration_points(labels.targets(task)[indices], p, 10)
        name = TASK_NAMES[task] + (" + clinical" if style == "--" else "")
        ax.plot(mean_p, rate, style + "o", color=colors[task], label=name, markersize=4)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="Predicted probability", ylabel="Observed rate", title="Calibration (10 bins)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=120)
    plt.close(fig)


def evaluate_predictions(
    labels: Labels,
    indices: np.ndarray,
    preds: Predictions,
    out: Path | None = None,
    threshold: str = "youden",
    thresholds: dict[str, float] | None = None,
    prevalence: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    split: str = "test",
    model: str = "",
    fused_thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Metrics (and, with ``out``, the report files) of predictions on rows ``indices``.

    ``threshold="model"`` uses ``thresholds`` (the ones stored with the model).
    """
    if threshold == "model" and not thresholds:
        raise ValueError("threshold 'model' needs thresholds stored with the model; none found")

    def rule(task: str, fused: bool = False) -> str | float:
        if threshold != "model":
            return threshold
        return float((fused_thresholds if fused and fused_thresholds else thresholds)[task])

    name = "model (validation Youden)" if threshold == "model" else None

    results: dict[str, Any] = {
        "model": model,
        "split": split,
        "n": int(indices.size),
        "tasks": list(preds.image),
    }
    for task, p in preds.image.items():
        y = labels.targets(task)[indices]
        results[task] = task_metrics(y, p, rule(task), prevalence, n_bootstrap, seed, name)
    if preds.fused:
        results["fused"] = {
            task: task_metrics(
                labels.targets(task)[indices], p, rule(task, True), prevalence, n_bootstrap, seed, name
            )
            for task, p in preds.fused.items()
        }
    results["subsets"] = subset_aucs(labels, indices, preds)
    results = _clean(results)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "table.md").write_text(markdown_table(results))
        with (out / "predictions.csv").open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            fused = sorted(preds.fused or {})
            writer.writerow(["path", *preds.image, *(f"{t}_fused" for t in fused)])
            for k, i in enumerate(indices):
                values = [f"{preds.image[t][k]:.6f}" for t in preds.image]
                values += [f"{preds.fused[t][k]:.6f}" for t in fused]
                writer.writerow([labels.rows[i]["path"], *values])
        _plots(out, labels, indices, preds)
    return results


def evaluate(
    model: Path | TorchPredictor | Any,
    data_dir: Path,
    out: Path | None,
    split: str = "test",
    threshold: str = "youden",
    prevalence: float | None = None,
    loader: Loader | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint / run folder / model repository / ``.onnx`` on ``split`` of
    ``data_dir`` (``split="all"``: every row). ``progress(phase, total)`` returns a callback
    that is fed the number of items done."""
    predictor = load_predictor(model, device) if isinstance(model, str | Path) else model
    labels = read_labels(data_dir)
    cache_progress = progress("decoding", len(labels)) if progress else None
    cache = build_cache(labels, predictor.image_size, loader, cache_dir, workers, cache_progress)
    indices = np.arange(len(labels)) if split == "all" else labels.split(split)
    indices = indices[cache.ok[indices]]
    if indices.size == 0:
        raise ValueError(f"split {split!r} of {data_dir} has no decodable rows")
    predict_progress = progress("predicting", int(indices.size)) if progress else None
    preds = predictor.predict(RowView(cache.images, indices), labels.clinical()[indices], predict_progress)
    return evaluate_predictions(
        labels, indices, preds, out, threshold, predictor.thresholds, prevalence, n_bootstrap, seed, split,
        predictor.description, getattr(predictor, "fused_thresholds", None),
    )  # fmt: skip
