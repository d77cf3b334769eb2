"""Closed-loop load: ``concurrency`` clients, each sending the next file as soon as its last
answer arrives. Returns per-request latencies and the achieved throughput."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["run_load", "describe"]


def run_load(call: Callable[[bytes], object], files: list[bytes], concurrency: int, rounds: int = 2) -> dict:
    work = files * rounds
    latencies: list[float] = []

    def one(data: bytes) -> None:
        start = time.perf_counter()
        call(data)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, work))
    elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "throughput": len(work) / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "n": len(work),
    }


def describe(name: str, r: dict) -> str:
    return (f"{name:34s} {r['throughput']:7.2f} img/s   p50 {r['p50']:7.1f} ms   p95 {r['p95']:7.1f} ms"
            f"   p99 {r['p99']:7.1f} ms   (n={r['n']})")  # fmt: skip
