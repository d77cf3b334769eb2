"""Classification metrics the study reports, in plain numpy (no scikit-learn dependency)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "roc_auc",
    "roc_curve",
    "resampled_aucs",
    "bootstrap_auc_ci",
    "choose_threshold",
    "binary_metrics",
    "adjusted_predictive_values",
    "calibration_bins",
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
    """Area under the ROC curve: the Mann-Whitney U statistic, ties counted as half."""
    labels, scores = _check(labels, scores)
    ranks = rankdata(scores)
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and the thresholds between them."""
    labels, scores = _check(labels, scores)
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), labels.size - 1]
    tps = np.cumsum(labels)[distinct]
    fps = 1 + distinct - tps
    tpr = np.r_[0.0, tps / labels.sum()]
    fpr = np.r_[0.0, fps / (~labels).sum()]
    return fpr, tpr, np.r_[np.inf, scores[distinct]]


def resampled_aucs(labels: np.ndarray, scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """AUC of each resample ``indices[b]`` (rows of sample indices), vectorised; NaN where a
    resample lacks one class.

    Scores are grouped into tied values once; per resample, positives and negatives are
    counted per group, and ``U = sum_g pos_g * (neg_below_g + neg_g / 2)``.
    """
    labels, scores = _check(labels, scores)
    indices = np.atleast_2d(indices)
    unique, group = np.unique(scores, return_inverse=True)
    n_groups, n_rows = unique.size, indices.shape[0]
    flat = group[indices] + n_groups * np.arange(n_rows)[:, None]
    positive = labels[indices]
    pos = np.bincount(flat[positive], minlength=n_rows * n_groups).reshape(n_rows, n_groups)
    neg = np.bincount(flat[~positive], minlength=n_rows * n_groups).reshape(n_rows, n_groups)
    neg_below = np.cumsum(neg, axis=1) - neg
    u = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, u / np.maximum(pairs, 1), np.nan)


def bootstrap_auc_ci(
    labels: np.ndarray, scores: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the AUC (resampling cases with replacement)."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    labels, scores = _check(labels, scores)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, 2_000_000 // labels.size))
    aucs = []
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        aucs.append(resampled_aucs(labels, scores, rng.integers(0, labels.size, size=(b, labels.size))))
    values = np.concatenate(aucs)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
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
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    tn = int((~predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
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


def calibration_bins(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of predicted probability: mean prediction, observed rate, count."""
    labels = np.asarray(labels, dtype=float).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    if labels.shape != p.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {p.shape} differ in length")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"probabilities must be in [0, 1], got range [{p.min()}, {p.max()}]")
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / counts
        rate = np.bincount(which, weights=labels, minlength=bins) / counts
    return mean_p, rate, counts


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """``sum_b (n_b / n) |observed rate_b - mean prediction_b|`` over equal-width bins."""
    mean_p, rate, counts = calibration_bins(labels, probabilities, bins)
    used = counts > 0
    return float((counts[used] * np.abs(rate[used] - mean_p[used])).sum() / counts.sum())


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=float).ravel()
    p = np.asarray(probabilities, dtype=float).ravel()
    if labels.shape != p.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {p.shape} differ in length")
    return float(np.mean((p - labels) ** 2))
