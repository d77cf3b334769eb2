"""Platt scaling: make predicted probabilities mean what they say.

Training weights the classes by inverse frequency (as the study does), which pushes every
probability towards the rare class. Per task, ``p = sigmoid(a * (l_pos - l_neg) + b)`` is
fitted on the validation split by maximum likelihood; ranking (AUC) is unchanged, the
probabilities, thresholds and population averages become calibrated. The exported ONNX
applies the same two numbers, so serving and evaluation agree.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

__all__ = ["fit_platt", "platt_probability", "IDENTITY"]

IDENTITY = (1.0, 0.0)


def platt_probability(logits: np.ndarray, ab: tuple[float, float] = IDENTITY) -> np.ndarray:
    """Positive-class probability of ``(N, 2)`` logits (negative, positive), Platt-scaled."""
    a, b = ab
    margin = a * (logits[:, 1] - logits[:, 0]) + b
    return (1.0 / (1.0 + np.exp(-margin))).astype(np.float64)


def fit_platt(margins: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the log-loss of ``sigmoid(a * margin + b)`` against 0/1 ``targets``."""
    margins, targets = np.asarray(margins, float), np.asarray(targets, float)
    if targets.min() == targets.max():
        raise ValueError("Platt scaling needs both classes in the validation split")

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * margins + params[1]
        p = 1.0 / (1.0 + np.exp(-z))
        nll = np.mean(np.logaddexp(0.0, z) - targets * z)
        residual = p - targets
        return nll, np.array([np.mean(residual * margins), np.mean(residual)])

    result = minimize(loss, np.array(IDENTITY), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    if not np.isfinite([a, b]).all() or a <= 0:
        return IDENTITY  # degenerate (e.g. inverted scores): keep the model's own probabilities
    return a, b
