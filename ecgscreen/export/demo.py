"""``ecgscreen demo-model`` (``make demo-model``): the committed demo model, from scratch.

1. synthesise a training set (standard difficulty, every format, layout and artefact) with
   its recordings (``--save-signals``: the paired views of format-invariant training);
2. train ``configs/demo.yaml`` (multi-task image model, then the clinical fusion head);
3. export it into the model repository (thresholds and averages from the validation split),
   with its INT8 variant for the CPU when it passes the parity gate (``export.quantize``);
4. synthesise a test set from a seed never used in training and evaluate the *exported
   ONNX* on all of it; the metrics, with bootstrap CIs, go into the model card.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..card import Metrics, ModelCard, Recipe
from ..contract import MODEL_NAME
from ..synth.generate import generate
from ..training.config import load_config
from ..training.evaluate import evaluate
from ..training.loop import Callbacks, train
from .novelty import fit_novelty
from .onnx_export import export_run
from .quantize import Int8Options

__all__ = ["build_demo", "TRAIN_SEED", "TEST_SEED"]

TRAIN_SEED = 1
TEST_SEED = 20_000  # never used for training data
NOVELTY_ECGS = 800  # training ECGs whose embeddings give the novelty distribution


def build_demo(
    work: Path,
    repository: Path,
    n_train: int = 5000,
    n_test: int = 1200,
    callbacks: Callbacks | None = None,
    progress=None,
    log=print,
    threads: int | None = None,
) -> ModelCard:
    """Run the whole recipe; return the model card."""
    start = time.monotonic()
    train_data, test_data, run = work / "train-data", work / "test-data", work / "run"

    def step(message: str) -> None:
        log(f"[{(time.monotonic() - start) / 60:5.1f} min] {message}")

    def bar(phase: str, total: int):
        return progress(phase, total) if progress else None

    if not (train_data / "labels.csv").exists():
        step(f"synthesising {n_train} training ECGs (seed {TRAIN_SEED})")
        generate(n_train, TRAIN_SEED, train_data, "standard", save_signals=True,
                 progress=bar("synthesising training set", n_train))  # fmt: skip
    step("training configs/demo.yaml")
    train(load_config("demo"), train_data, run, resume=(run / "last.pt").exists(), callbacks=callbacks,
          threads=threads)  # fmt: skip
    step(f"exporting to {repository}")
    card = export_run(run, repository, int8=Int8Options())
    step("fitting the training embeddings' distribution (novelty warnings)")
    fit_novelty(
        repository, train_data, "train", NOVELTY_ECGS, progress=bar("embedding training ECGs", NOVELTY_ECGS)
    )
    if not (test_data / "labels.csv").exists():
        step(f"synthesising {n_test} test ECGs (seed {TEST_SEED}, never seen in training)")
        generate(n_test, TEST_SEED, test_data, "standard", progress=bar("synthesising test set", n_test))
    step("evaluating the exported ONNX on the whole test set")
    results = evaluate(
        repository, test_data, work / "test-eval", split="all", threshold="model", progress=progress
    )
    folder = repository / MODEL_NAME
    card = ModelCard.load(folder)
    card.metrics = Metrics.from_results(results)
    card.metrics.data = (
        f"{n_test} fresh synthetic ECGs (ecgscreen synth --seed {TEST_SEED} --difficulty standard, all formats, "
        "layouts, grids and acquisitions), evaluated through the exported ONNX at the model card's thresholds"
    )
    card.recipe = Recipe(command="make demo-model", minutes=round((time.monotonic() - start) / 60, 1))
    card.save(folder)
    step("done")
    return card
