"""Evaluation: metrics of hand-computable cases, subsets, reports, checkpoint vs ONNX, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from signal_datasets import signal_loader
from typer.testing import CliRunner

from ecgscreen.cli import app
from ecgscreen.export.onnx_export import export_run
from ecgscreen.training.data import PipelineLoader, read_labels
from ecgscreen.training.evaluate import (
    evaluate,
    evaluate_predictions,
    markdown_table,
    subset_aucs,
    task_metrics,
)
from ecgscreen.training.predictors import Predictions, find_onnx


def test_task_metrics_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probs = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    m = task_metrics(labels, probs, "fixed:0.5", prevalence=0.1, n_bootstrap=1000)
    assert m["n"] == 8 and m["prevalence"] == 0.5 and m["threshold"] == 0.5
    assert m["auc"] == pytest.approx(15 / 16)
    assert m["auc_ci95"][0] <= m["auc"] <= m["auc_ci95"][1]
    assert (m["sensitivity"], m["specificity"], m["ppv"], m["npv"]) == (0.75, 0.75, 0.75, 0.75)
    assert m["confusion"] == {"tp": 3, "fp": 1, "tn": 3, "fn": 1}
    assert m["adjusted"]["ppv"] == pytest.approx(0.075 / (0.075 + 0.225))
    assert m["brier"] == pytest.approx(np.mean((probs - labels) ** 2))
    assert m["mean_probability"] == pytest.approx(probs.mean())
    youden = task_metrics(labels, probs, "youden", n_bootstrap=50)
    assert youden["threshold"] == pytest.approx(0.7) and youden["specificity"] == 1.0
    one_class = task_metrics(np.zeros(4), probs[:4], "youden", n_bootstrap=50)
    assert one_class["auc"] is None and one_class["threshold"] == 0.5


def test_ece_of_a_calibrated_sample_is_small():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 20_000)
    m = task_metrics(rng.random(p.size) < p, p, n_bootstrap=10)
    assert m["ece"] < 0.02
    assert task_metrics(rng.random(p.size) < p, np.clip(p + 0.2, 0, 1), n_bootstrap=10)["ece"] > 0.15


def test_subsets_find_the_hardest_acquisition(signal_dataset):
    labels = read_labels(signal_dataset)
    indices = np.arange(len(labels))
    acquisition = np.array([r["acquisition"] for r in labels.rows])
    truth = labels.targets("scar").astype(float)
    # perfect on clean ECGs, inverted on photos, noisy on scans
    p = np.where(acquisition == "photo", 1 - truth, truth)
    p = np.where(acquisition == "scan", 0.5 + 0.1 * np.sin(np.arange(len(p))), p)
    out = subset_aucs(labels, indices, Predictions({"scar": p}, None))
    assert out["acquisition"]["clean"]["scar"] == 1.0 and out["acquisition"]["photo"]["scar"] == 0.0
    assert out["clean_vs_hardest"]["scar"] == {"clean": 1.0, "hardest": "photo", "hardest_auc": 0.0}
    assert sum(v["n"] for v in out["format"].values()) == len(labels)


def test_reports_are_written(tmp_path, signal_dataset):
    labels = read_labels(signal_dataset)
    idx = labels.split("train")
    rng = np.random.default_rng(1)
    preds = Predictions(
        {"scar": rng.random(idx.size), "lvef": rng.random(idx.size)}, {"scar": rng.random(idx.size)}
    )
    results = evaluate_predictions(labels, idx, preds, tmp_path, "sensitivity:0.9", n_bootstrap=100)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == results and saved["tasks"] == ["scar", "lvef"] and set(saved["fused"]) == {"scar"}
    for task in ("scar", "lvef"):
        assert saved[task]["sensitivity"] >= 0.9
        for key in ("auc", "auc_ci95", "sensitivity", "specificity", "ppv", "npv", "ece", "n", "prevalence"):
            assert key in saved[task]
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| Task | AUC (95% CI)") and len(table) == 5
    assert "Myocardial scar + clinical" in table[-1]
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "calibration.png").is_file()
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == idx.size + 1
    assert markdown_table(results) == (tmp_path / "table.md").read_text()
    with pytest.raises(ValueError, match="thresholds"):
        evaluate_predictions(labels, idx, preds, None, "model")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    repository = tmp_path_factory.mktemp("repo")
    export_run(tiny_run, repository)
    return repository


def test_checkpoint_and_onnx_give_the_same_metrics(tmp_path, tiny_run, exported, signal_dataset):
    kwargs = dict(loader=signal_loader, cache_dir=tmp_path / "cache", n_bootstrap=100, threshold="model")
    torch_results = evaluate(tiny_run, signal_dataset, tmp_path / "torch", **kwargs)
    onnx_results = evaluate(exported, signal_dataset, tmp_path / "onnx", **kwargs)
    assert onnx_results["model"].startswith("onnx") and torch_results["model"].startswith("checkpoint")
    pairs = [(torch_results[t], onnx_results[t]) for t in torch_results["tasks"]]
    pairs += [(m, onnx_results["fused"][t]) for t, m in torch_results["fused"].items()]
    assert len(pairs) == 4
    for m, o in pairs:
        assert o["threshold"] == pytest.approx(m["threshold"])
        for key in ("auc", "brier", "mean_probability"):
            assert o[key] == pytest.approx(m[key], abs=1e-4)
    a = np.loadtxt(tmp_path / "torch/predictions.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3, 4))
    b = np.loadtxt(tmp_path / "onnx/predictions.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3, 4))
    assert np.abs(a - b).max() <= 1e-4
    model_path, fusion_path, card_path = find_onnx(exported / "ecg_multitask" / "1" / "model.onnx")
    assert fusion_path.name == "fusion.onnx" and card_path.name == "model_card.json"


def test_cli_evaluate(tmp_path, tiny_run, signal_dataset, monkeypatch):
    # the CLI reads files with the intake pipeline; here the stored signals stand in for it
    monkeypatch.setattr(PipelineLoader, "__call__", lambda self, d, row, size: signal_loader(d, row, size))
    monkeypatch.setattr(PipelineLoader, "version", property(lambda self: "test-signals"))
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app, ["evaluate", "--model", str(tiny_run), "--data", str(signal_dataset), "--out", str(out),
              "--split", "val", "--prevalence", "0.2", "--bootstrap", "100", "--workers", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["n"] == 8
    assert metrics["scar"]["adjusted"]["prevalence"] == 0.2
    bad = CliRunner().invoke(
        app, ["evaluate", "--model", str(tiny_run), "--data", str(tmp_path), "--out", str(out)]
    )
    assert bad.exit_code == 2 and "no labels.csv" in bad.output
