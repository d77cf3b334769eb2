"""Platt scaling: recovers a known miscalibration, is applied identically in torch and ONNX."""

import numpy as np
import pytest
import torch

from ecgscreen.export.onnx_export import _platt_buffer, _probabilities
from ecgscreen.training.calibration import IDENTITY, fit_platt, platt_probability
from ecgscreen.training.metrics import roc_auc


def test_fit_recovers_the_true_link():
    rng = np.random.default_rng(0)
    margins = rng.normal(0, 2, 20_000)
    targets = rng.random(margins.size) < 1 / (1 + np.exp(-(0.5 * margins - 1.0)))
    a, b = fit_platt(margins, targets)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(-1.0, abs=0.05)


def test_calibration_keeps_the_ranking_and_fixes_the_mean():
    rng = np.random.default_rng(1)
    targets = rng.random(5000) < 0.2
    logits = np.stack([np.zeros(5000), rng.normal(1.5, 1, 5000) + 2.0 * targets], axis=1)  # over-confident
    raw = platt_probability(logits)
    scaled = platt_probability(logits, fit_platt(logits[:, 1] - logits[:, 0], targets))
    assert roc_auc(targets, scaled) == pytest.approx(roc_auc(targets, raw))
    assert abs(raw.mean() - targets.mean()) > 0.3
    assert abs(scaled.mean() - targets.mean()) < 0.01


def test_degenerate_scores_keep_the_identity_and_one_class_is_refused():
    rng = np.random.default_rng(2)
    targets = rng.random(1000) < 0.5
    assert fit_platt(np.where(targets, -1.0, 1.0), targets) == IDENTITY  # inverted scores
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.zeros(10), np.zeros(10))


def test_the_exported_graph_applies_the_same_formula():
    logits = torch.tensor([[0.3, 1.2, -0.4, 0.1], [1.0, -1.0, 0.0, 2.0]])
    platt = _platt_buffer(("scar", "lvef"), {"scar": [0.7, -0.2]})
    scar, lvef = _probabilities(logits, platt)
    expected_scar = platt_probability(logits[:, :2].numpy(), (0.7, -0.2))
    expected_lvef = torch.softmax(logits[:, 2:], dim=1)[:, 1].numpy()  # identity = softmax
    np.testing.assert_allclose(scar.numpy().ravel(), expected_scar, atol=1e-6)
    np.testing.assert_allclose(lvef.numpy().ravel(), expected_lvef, atol=1e-6)
