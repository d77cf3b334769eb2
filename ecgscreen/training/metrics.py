"""Classification metrics the study reports.

scikit-learn computes the AUC, the ROC curve, the confusion counts, the Brier score and the
calibration curve; scipy bootstraps the AUC's confidence interval. By hand, only what they
lack: the expected calibration error, PPV/NPV at another prevalence, the threshold rules, and
the bootstrap's statistic (``resampled_auc``: the AUC of every resample at once, because
``roc_auc_score`` validates its input on each call and a thousand calls per curve cost
seconds; the tests hold the two to the same numbers).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import DegenerateDataWarning, bootstrap, rankdata
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, confusion_matrix, roc_auc_score
from sklearn.metrics import roc_curve as _roc_curve

__all__ = [
    "roc_auc",
    "roc_curve",
    "resampled_auc",
    "bootstrap_auc_ci",
    "choose_threshold",
    "binary_metrics",
    "adjusted_predictive_values",
    "calibration_bins",
    "calibration_points",
    "expected_calibration_error",
    "brier_score",
]


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if labels.all() or not labels.any():
        raise ValueError("AUC needs both positive and negative labels")
    return labels, scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    labels, scores = _check(labels, scores)
    return float(roc_auc_score(labels, scores))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and the thresholds between them: one point
    per distinct score, the first at threshold infinity."""
    labels, scores = _check(labels, scores)
    return _roc_curve(labels, scores, drop_intermediate=False)


def resampled_auc(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """The AUC along ``axis`` of each row of resampled ``labels`` / ``scores`` (NaN where a
    resample lacks a class), as the Mann-Whitney U: the positives' rank sum (ties averaged)
    less its minimum, over the number of positive-negative pairs."""
    labels = np.asarray(labels, dtype=bool)
    ranks = rankdata(scores, axis=axis)
    positives = labels.sum(axis=axis)
    pairs = positives * (labels.shape[axis] - positives)
    u = (ranks * labels).sum(axis=axis) - positives * (positives + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, u / np.maximum(pairs, 1), np.nan)


def bootstrap_auc_ci(
    labels: np.ndarray, scores: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the AUC (``scipy.stats.bootstrap``, cases
    resampled with replacement, labels and scores together). A resample that happens to hold
    one class has no AUC; it is left out of the percentiles."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    labels, scores = _check(labels, scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # NaN resamples: handled below
        result = bootstrap(
            (labels, scores), resampled_auc, paired=True, vectorized=True, n_resamples=n_resamples,
            confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
        )  # fmt: skip
    low, high = result.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        tail = 100 * (1 - level) / 2
        low, high = np.nanpercentile(result.bootstrap_distribution, [tail, 100 - tail])
    return float(low), float(high)


def choose_threshold(labels: np.ndarray, scores: np.ndarray, rule: str = "youden") -> float:
    """A decision threshold (``score >= t`` is positive) by ``rule``.

    ``youden``: maximises sensitivity + specificity - 1; ``fixed:T``: ``T``;
    ``sensitivity:S``: the highest threshold whose sensitivity is at least ``S``.
    """
    kind, _, value = rule.partition(":")
    if kind == "fixed":
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"threshold rule {rule!r}: expected fixed:<number>") from None
    if kind == "youden" and not value:
        fpr, tpr, thresholds = roc_curve(labels, scores)
        best = int(np.argmax((tpr - fpr)[1:])) + 1  # skip the (inf) start of the curve
        return float(thresholds[best])
    if kind == "sensitivity":
        try:
            target = float(value)
        except ValueError:
            raise ValueError(f"threshold rule {rule!r}: expected sensitivity:<0..1>") from None
        if not 0 < target <= 1:
            raise ValueError(f"threshold rule {rule!r}: sensitivity must be in (0, 1]")
        _, tpr, thresholds = roc_curve(labels, scores)
        return float(thresholds[int(np.argmax(tpr >= target - 1e-12))])
    raise ValueError(f"unknown threshold rule {rule!r}; expected youden, fixed:T or sensitivity:S")


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV and the confusion counts at ``score >= threshold``."""
    labels = np.asarray(labels).astype(bool).ravel()
    predicted = np.asarray(scores, dtype=float).ravel() >= threshold
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[False, True]).ravel())
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def adjusted_predictive_values(
    sensitivity: float, specificity: float, prevalence: float
) -> tuple[float, float]:
    """PPV and NPV at another ``prevalence`` (Bayes' rule with the same sensitivity/specificity)."""
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be in (0, 1), got {prevalence}")
    p = prevalence
    ppv = _ratio(sensitivity * p, sensitivity * p + (1 - specificity) * (1 - p))
    npv = _ratio(specificity * (1 - p), specificity * (1 - p) + (1 - sensitivity) * p)
    return ppv, npv


def _probabilities(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=float).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    if labels.shape != p.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {p.shape} differ in length")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"probabilities must be in [0, 1], got range [{p.min()}, {p.max()}]")
    return labels, p


def calibration_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of predicted probability: mean prediction, observed rate, count
    (scikit-learn's ``calibration_curve`` drops the counts, which the ECE weighs by)."""
    labels, p = _probabilities(labels, probabilities)
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / counts
        rate = np.bincount(which, weights=labels, minlength=bins) / counts
    return mean_p, rate, counts


def calibration_points(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Mean prediction and observed rate of each non-empty bin, for a calibration plot."""
    labels, p = _probabilities(labels, probabilities)
    rate, mean_p = calibration_curve(labels, p, n_bins=bins, strategy="uniform")
    return mean_p, rate


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """``sum_b (n_b / n) |observed rate_b - mean prediction_b|`` over equal-width bins."""
    mean_p, rate, counts = calibration_bins(labels, probabilities, bins)
    used = counts > 0
    return float((counts[used] * np.abs(rate[used] - mean_p[used])).sum() / counts.sum())


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference between the predicted probability and the 0/1 outcome."""
    labels, p = _probabilities(labels, probabilities)
    return float(brier_score_loss(labels, p, pos_label=1.0))
