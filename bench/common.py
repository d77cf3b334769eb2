"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["timed", "summary"]


def timed(fn: Callable[[], object], repeat: int = 1) -> list[float]:
    """Wall times (ms) of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times_ms: list[float]) -> dict[str, float]:
    values = np.asarray(times_ms)
    return {
        "median_ms": float(np.median(values)),
        "p95_ms": float(np.percentile(values, 95)),
        "n": int(values.size),
    }
