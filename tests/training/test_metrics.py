"""Metrics against cases small enough to compute by hand, and the bootstrap's statistic
against scikit-learn's AUC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgscreen.training import metrics as M

LABELS = np.array([0, 0, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8])  # one discordant pair of four: AUC 0.75


def test_auc_by_hand_with_ties():
    assert M.roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    assert M.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert M.roc_auc([0, 1, 1], [0.2, 0.2, 0.9]) == pytest.approx(0.75)  # one tie counts half
    with pytest.raises(ValueError, match="both positive and negative"):
        M.roc_auc([1, 1], [0.1, 0.2])


def test_the_bootstrap_statistic_is_scikit_learns_auc_on_every_resample():
    rng = np.random.default_rng(0)
    labels = rng.random(60) < 0.3
    scores = np.round(rng.random(60) + labels * 0.3, 1)  # rounding makes ties
    indices = rng.integers(0, 60, size=(50, 60))
    indices[0] = np.flatnonzero(~labels)[0]  # a resample with a single class
    fast = M.resampled_auc(labels[indices], scores[indices])
    assert np.isnan(fast[0])
    for row, value in zip(indices[1:], fast[1:], strict=True):
        assert value == pytest.approx(roc_auc_score(labels[row], scores[row]), abs=1e-12)


def test_bootstrap_ci_contains_the_auc_and_is_seeded():
    rng = np.random.default_rng(1)
    labels = rng.random(5000) < 0.35
    scores = rng.normal(labels * 1.0, 1.0)
    auc = M.roc_auc(labels, scores)
    low, high = M.bootstrap_auc_ci(labels, scores, n_resamples=1000, seed=3)
    assert low < auc < high and high - low < 0.05
    assert (low, high) == M.bootstrap_auc_ci(labels, scores, n_resamples=1000, seed=3)
    small = M.bootstrap_auc_ci(labels[:200], scores[:200], n_resamples=1000, seed=3)
    assert small[1] - small[0] > high - low
    with pytest.raises(ValueError, match="n_resamples"):
        M.bootstrap_auc_ci(labels, scores, n_resamples=0)


def test_resamples_lacking_a_class_are_left_out_not_fatal():
    labels = np.zeros(20, dtype=bool)
    labels[3] = True  # one positive: about a third of the resamples miss it
    scores = np.linspace(0, 1, 20)
    low, high = M.bootstrap_auc_ci(labels, scores, n_resamples=500, seed=0)
    assert 0 <= low <= M.roc_auc(labels, scores) <= high <= 1


def test_thresholds_by_rule():
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.8, 0.9])
    # Youden: t=0.7 -> sens 3/4, spec 1 (J 0.75); t=0.4 -> sens 1, spec 2/3 (J 0.67)
    assert M.choose_threshold(labels, scores, "youden") == pytest.approx(0.7)
    assert M.choose_threshold(labels, scores, "sensitivity:0.9") == pytest.approx(0.4)
    assert M.choose_threshold(labels, scores, "sensitivity:0.5") == pytest.approx(0.8)
    assert M.choose_threshold(labels, scores, "fixed:0.5") == 0.5
    for bad in ("median", "fixed:x", "sensitivity:2", "youden:1"):
        with pytest.raises(ValueError, match=bad.split(":")[0]):
            M.choose_threshold(labels, scores, bad)


def test_binary_metrics_by_hand():
    out = M.binary_metrics(LABELS, SCORES, 0.35)  # predicted positive: 0.4, 0.35, 0.8
    assert out["tp"] == 2 and out["fp"] == 1 and out["tn"] == 1 and out["fn"] == 0
    assert out["sensitivity"] == 1.0 and out["specificity"] == 0.5
    assert out["ppv"] == pytest.approx(2 / 3) and out["npv"] == 1.0
    nothing = M.binary_metrics(LABELS, SCORES, 2.0)
    assert np.isnan(nothing["ppv"]) and nothing["npv"] == 0.5


def test_prevalence_adjusted_predictive_values():
    ppv, npv = M.adjusted_predictive_values(0.8, 0.9, 0.1)
    assert ppv == pytest.approx(0.08 / (0.08 + 0.09)) and npv == pytest.approx(0.81 / (0.81 + 0.02))
    # at the sample's own prevalence, Bayes' rule gives back the observed PPV / NPV
    out = M.binary_metrics(LABELS, SCORES, 0.35)
    assert M.adjusted_predictive_values(out["sensitivity"], out["specificity"], 0.5) == pytest.approx(
        (out["ppv"], out["npv"])
    )
    with pytest.raises(ValueError, match="1.5"):
        M.adjusted_predictive_values(0.8, 0.9, 1.5)


def test_calibration_error_small_when_calibrated_large_when_not():
    rng = np.random.default_rng(2)
    p = rng.random(200_000)
    y = rng.random(p.size) < p
    assert M.expected_calibration_error(y, p) < 0.01
    overconfident = np.full(1000, 0.9)
    half = np.arange(1000) % 2
    assert M.expected_calibration_error(half, overconfident) == pytest.approx(0.4)
    mean_p, rate, counts = M.calibration_bins(half, overconfident)
    assert counts[9] == 1000 and rate[9] == pytest.approx(0.5) and np.isnan(rate[0])
    with pytest.raises(ValueError, match="1.2"):
        M.expected_calibration_error([0, 1], [0.5, 1.2])


def test_brier_by_hand():
    assert M.brier_score([0, 1, 1], [0.0, 0.5, 1.0]) == pytest.approx(0.25 / 3)
