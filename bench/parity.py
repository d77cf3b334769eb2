"""``python -m bench parity``: one ECG, one answer, whatever file it came in.

A fresh seed of the generator, each ECG written in every format it makes (``synth.
renditions``: PDF, DICOM PDF, PNG / JPEG / DICOM-SC as clean export, scan and photo) and as
its raw waveform. Every file goes through the serving intake and the committed model (ONNX,
image-only probabilities); the table gives, per format, |P(file) - P(waveform)| for both
tasks: median, 95th percentile and maximum, and the files refused. Goal: p95 <= 0.05 and
max <= 0.15 in every format.

Options: ``--n N`` (default 200), ``--seed S`` (default 31, never used for training),
``--repository DIR`` (default model_repository), ``--workers W`` (default: one per core).
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ecgscreen.contract import CANONICAL_SIZE
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.imaging.worker import settle_intake_process
from ecgscreen.synth.renditions import REFERENCE, RENDITIONS, renditions_of
from ecgscreen.training.predictors import OnnxPredictor

P95_GOAL, MAX_GOAL = 0.05, 0.15


def canonical_inputs(job: tuple[int, int, bool]) -> dict[str, np.ndarray | str]:
    """Every rendition of record ``index`` through intake: canonical image or refusal reason."""
    seed, index, world_pages = job
    _, files = renditions_of(seed, index, world_pages=world_pages)
    out: dict[str, np.ndarray | str] = {}
    for name, data in files.items():
        try:
            out[name] = preprocess(data).canonical
        except IntakeError as error:
            out[name] = error.reason
    return out


def measure(
    n: int, seed: int, repository: Path, workers: int | None = None, progress=None, world_pages: bool = True
) -> dict:
    """Per rendition: ``{"scar": deltas, "lvef": deltas, "refused": count}`` against the waveform
    (the generator's world pages, or only its first page design)."""
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=settle_intake_process) as pool:
        results = []
        for result in pool.map(canonical_inputs, [(seed, i, world_pages) for i in range(n)], chunksize=2):
            results.append(result)
            if progress:
                progress(1)
    predictor = OnnxPredictor(repository)
    table: dict[str, dict] = {}
    reference_ok = [i for i, r in enumerate(results) if not isinstance(r[REFERENCE], str)]
    images = np.stack([results[i][REFERENCE] for i in reference_ok])
    nan = np.full((len(images), 6), np.nan)
    reference = predictor.predict(images, nan).image
    for name in RENDITIONS[1:]:
        ok = [k for k, i in enumerate(reference_ok) if not isinstance(results[i][name], str)]
        refused = [results[i][name] for i in range(n) if isinstance(results[i][name], str)]
        row: dict = {"refused": refused}
        if ok:
            files = np.stack([results[reference_ok[k]][name] for k in ok])
            probs = predictor.predict(files, np.full((len(ok), 6), np.nan)).image
            for task in predictor.tasks:
                row[task] = np.abs(probs[task] - reference[task][ok])
        table[name] = row
    return {"table": table, "tasks": predictor.tasks, "n": n}


def report(result: dict) -> bool:
    tasks = result["tasks"]
    head = f"{'format':14s}" + "".join(f"{t + ' p50':>10s}{t + ' p95':>10s}{t + ' max':>10s}" for t in tasks)
    print(head + f"{'refused':>9s}")
    worst_p95, worst_max = 0.0, 0.0
    for name, row in result["table"].items():
        cells = ""
        for task in tasks:
            d = row.get(task, np.array([np.nan]))
            p95, top = float(np.percentile(d, 95)), float(d.max())
            worst_p95, worst_max = max(worst_p95, p95), max(worst_max, top)
            cells += f"{np.median(d):10.3f}{p95:10.3f}{top:10.3f}"
        print(f"{name:14s}{cells}{len(row['refused']):9d}")
    passed = worst_p95 <= P95_GOAL and worst_max <= MAX_GOAL
    print(
        f"worst p95 {worst_p95:.3f} (goal <= {P95_GOAL}), worst max {worst_max:.3f} (goal <= {MAX_GOAL}): "
        + ("PASS" if passed else "FAIL")
    )
    return passed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench parity")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--first-page", action="store_true", help="only the generator's first page design")
    args = parser.parse_args(argv)
    from rich.progress import Progress

    print(f"{args.n} ECGs (seed {args.seed}) x {len(RENDITIONS)} formats, canonical {CANONICAL_SIZE} px")
    with Progress() as bar:
        task = bar.add_task("intake", total=args.n)
        result = measure(
            args.n,
            args.seed,
            args.repository,
            args.workers,
            lambda k: bar.advance(task, k),
            not args.first_page,
        )
    report(result)
