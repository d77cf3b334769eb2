"""Generation speed per format (records/s on one core) and the dataset writer on all cores."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ecgscreen.synth.generate import FORMATS, encode_record, generate, make_record

from .common import summary, timed

N_PER_FORMAT = 12


def main() -> None:
    print(f"{'format':14s} {'median ms':>10s} {'p95 ms':>8s} {'ECGs/s':>7s}  (one core, {N_PER_FORMAT} each)")
    for fmt in FORMATS:
        times = [
            timed(lambda i=i, f=fmt: encode_record(make_record(7, i, formats=(f,))))[0]
            for i in range(N_PER_FORMAT)
        ]
        s = summary(times)
        print(f"{fmt:14s} {s['median_ms']:10.1f} {s['p95_ms']:8.1f} {1000 / s['median_ms']:7.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        n = 48
        start = time.perf_counter()
        generate(n, 3, Path(tmp) / "one", workers=1)
        one = time.perf_counter() - start
        start = time.perf_counter()
        generate(n, 3, Path(tmp) / "all", workers=os.cpu_count())
        every = time.perf_counter() - start
    print(
        f"dataset writer, mixed formats: {n / one:.1f} ECGs/s on 1 worker, {n / every:.1f} on "
        f"{os.cpu_count()} workers (x{one / every:.2f})"
    )
