"""The page segmenter into the Triton repository (``ecg_segment``), and ``make segmenter-model``.

Contract (``model_repository/ecg_segment``; names in ``ecgscreen.contract``)::

    1/model.onnx   page UINT8 [B, H, W, 3]  ->  classes       UINT8 [B, H, W]     (SEGMENTER_CLASSES index)
                                                probabilities UINT8 [B, C, H, W]  (round(255 x softmax))
    model_card.json (``ecgscreen.segmenter_card.SegmenterCard``)

Any ``H, W`` (at least 16): the page as RGB at ``SEGMENTER_PX_PER_MM``; the graph normalises it
((x / 255 - mean) / std), so the GPU does that work and 3 bytes a pixel cross to it. ONNX opset
``onnx_export.OPSET``, dynamic batch, height and width. The Triton configs (``config.pbtxt``:
native onnxruntime, TensorRT FP16; ``configs/cpu.pbtxt`` + ``1/model.py``: the same ONNX in the
python backend) are committed files; export checks them against the card.

``build_segmenter_model`` is the whole recipe: cache the training pages, train
``configs/segmenter/segmenter.yaml`` (resumable), export, evaluate the exported ONNX on fresh pages
(per-class IoU, trace IoU per acquisition), time it on one core, write the card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..card import OnnxFile, Recipe, TensorSpec
from ..contract import (
    INTENDED_USE,
    PAGE_MM,
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_CLASSES,
    SEGMENTER_INPUT,
    SEGMENTER_MEAN,
    SEGMENTER_NAME,
    SEGMENTER_PROBABILITY_OUTPUT,
    SEGMENTER_PX_PER_MM,
    SEGMENTER_STD,
)
from ..nets.segmenter import SegmenterNet
from ..segmenter_card import (
    SegmenterArchitecture,
    SegmenterCard,
    SegmenterInput,
    SegmenterMetrics,
    SegmenterSpeed,
    segmenter_config_problems,
)
from ..serving.onnx_backend import cpu_session, pruned_model
from ..training.segment_data import write_pages
from ..training.segmenter import evaluate_segmenter, load_segmenter, load_segmenter_config, train_segmenter
from .onnx_export import OPSET

__all__ = [
    "SegmenterGraph",
    "tensor_specs",
    "export_segmenter_onnx",
    "onnx_predictor",
    "time_onnx",
    "export_segmenter",
    "build_segmenter_model",
    "TEST_SEED",
]

log = logging.getLogger(__name__)

TEST_SEED = 30_000  # fresh pages, never used for training (train seed 1, validation seed 2)
A4_AT_SCALE = tuple(round(mm * SEGMENTER_PX_PER_MM) for mm in reversed(PAGE_MM))  # (H, W) = (840, 1188)


class SegmenterGraph(nn.Module):
    """``page`` uint8 ``(B, H, W, 3)`` -> ``(classes, probabilities)`` as in the contract."""

    def __init__(self, model: SegmenterNet):
        super().__init__()
        self.model = model
        self.eval()  # export restores the wrapper's mode: it must be eval too

    def forward(self, page: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(self.model.normalise(page))
        probabilities = torch.round(logits.softmax(dim=1) * 255.0).to(torch.uint8)
        return logits.argmax(dim=1).to(torch.uint8), probabilities


def tensor_specs() -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """The graph's inputs and outputs as the card lists them (-1: batch, height, width)."""
    inputs = {SEGMENTER_INPUT: TensorSpec(dtype="UINT8", shape=[-1, -1, -1, 3])}
    outputs = {
        SEGMENTER_CLASS_OUTPUT: TensorSpec(dtype="UINT8", shape=[-1, -1, -1]),
        SEGMENTER_PROBABILITY_OUTPUT: TensorSpec(
            dtype="UINT8", shape=[-1, len(SEGMENTER_CLASSES), -1, -1], order=list(SEGMENTER_CLASSES)
        ),
    }
    return inputs, outputs


def export_segmenter_onnx(model: SegmenterNet, path: Path, check_size: tuple[int, int] = (203, 317)) -> float:
    """Write ``model`` as ONNX to ``path``; return the largest difference of its class
    probabilities from torch's (in probability, both rounded to 1/255) on a random page of
    an odd size, which also proves the dynamic height and width."""
    import onnxruntime as ort

    graph = SegmenterGraph(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.full((1, 64, 96, 3), 255, dtype=torch.uint8)
    names = [SEGMENTER_CLASS_OUTPUT, SEGMENTER_PROBABILITY_OUTPUT]
    dynamic = {SEGMENTER_INPUT: {0: "batch", 1: "height", 2: "width"}, SEGMENTER_CLASS_OUTPUT: {0: "batch", 1: "height", 2: "width"},
               SEGMENTER_PROBABILITY_OUTPUT: {0: "batch", 2: "height", 3: "width"}}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), str(path), input_names=[SEGMENTER_INPUT], output_names=names,
                          opset_version=OPSET, dynamic_axes=dynamic, do_constant_folding=True, dynamo=False)  # fmt: skip
    page = np.random.default_rng(0).integers(0, 256, size=(2, *check_size, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, got = session.run(names, {SEGMENTER_INPUT: page})
    with torch.no_grad():
        _, want = graph(torch.from_numpy(page))
    return float(np.abs(got.astype(np.float32) - want.numpy().astype(np.float32)).max() / 255.0)


def onnx_predictor(path: Path, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """``page (H, W, 3) uint8 -> classes (H, W) uint8`` through the exported ONNX, pruned to
    its classes as the CPU server runs it for a request that asks for them alone."""
    config = {"parameters": {"intra_op_threads": {"string_value": str(threads)}}}
    session = cpu_session(pruned_model(str(path), [SEGMENTER_CLASS_OUTPUT]), config)

    def predict(page: np.ndarray) -> np.ndarray:
        return session.run([SEGMENTER_CLASS_OUTPUT], {SEGMENTER_INPUT: np.ascontiguousarray(page)[None]})[0][
            0
        ]

    return predict


def time_onnx(path: Path, repeats: int = 5) -> SegmenterSpeed:
    """Median time of one A4 page at the segmenter's scale, classes only, one thread."""
    predict = onnx_predictor(path, threads=1)
    page = np.random.default_rng(0).integers(0, 256, size=(*A4_AT_SCALE, 3), dtype=np.uint8)
    predict(page)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(page)
        times.append(time.perf_counter() - start)
    return SegmenterSpeed(
        median_ms_per_page=round(float(np.median(times)) * 1000, 1),
        page=f"A4 at {SEGMENTER_PX_PER_MM:g} px/mm: {A4_AT_SCALE[1]} x {A4_AT_SCALE[0]} px",
        measured_with="onnxruntime CPUExecutionProvider, 1 intra-op thread, the graph pruned to the classes "
        "output (serving.onnx_backend.OutputSessions, as the CPU server runs a request for the classes alone)",
    )


def export_segmenter(run: Path, repository: Path, version: str | None = None) -> SegmenterCard:
    """Export the run's model into ``repository/ecg_segment`` (``1/model.onnx`` and the card,
    without metrics); ``ValueError`` when the committed Triton configs disagree with it."""
    model, meta = load_segmenter(run)
    folder = Path(repository) / SEGMENTER_NAME
    onnx_path = folder / "1" / "model.onnx"
    diff = export_segmenter_onnx(model, onnx_path)
    data = onnx_path.read_bytes()
    inputs, outputs = tensor_specs()
    problems = segmenter_config_problems(folder, inputs, outputs)
    if problems:
        raise ValueError("the Triton configs disagree with the segmenter: " + "; ".join(problems))
    config = meta["train_config"]
    history = meta.get("history") or []
    card = SegmenterCard(
        name=SEGMENTER_NAME,
        version=version or dt.date.today().isoformat(),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        intended_use=INTENDED_USE,
        classes=list(SEGMENTER_CLASSES),
        architecture=SegmenterArchitecture(
            kind="U-Net (plain torch, MONAI BasicUNet's layout; bilinear upsampling to the skip's size)",
            variant=config["variant"],
            features=model.config["features"],
            parameters=sum(p.numel() for p in model.parameters()),
        ),  # fmt: skip
        input=SegmenterInput(
            px_per_mm=SEGMENTER_PX_PER_MM,
            colour="RGB uint8 (B, H, W, 3); a grey page as three equal channels",
            mean=SEGMENTER_MEAN,
            std=SEGMENTER_STD,
            normalisation="inside the graph: (x / 255 - mean) / std",
            trained_on=f"{config['crop']} px square crops at {SEGMENTER_PX_PER_MM:g} px/mm x 1/{config['scale_jitter']:g}"
            f"..{config['scale_jitter']:g}",
        ),  # fmt: skip
        inputs=inputs,
        outputs=outputs,
        onnx=OnnxFile(
            file="1/model.onnx",
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
            opset=OPSET,
            max_abs_diff_vs_torch=diff,
        ),  # fmt: skip
        training_data={
            "source": "the project's ECG page generator (ecgscreen.synth): raster formats png, jpeg, dcm-sc; "
            "every layout, grid, colour storage and acquisition (clean, scan, photo) as it mixes them; "
            "images decoded as intake decodes them, masks pixel-exact (synth.masks.record_masks)",
            "seed": config["train_seed"],
            "pages": config["n_pages"],
            "validation": f"{config['val_crops']} crops of {config['val_pages']} pages of seed {config['val_seed']}",
        },
        training={
            "config": "ecgscreen/training/configs/segmenter/segmenter.yaml",
            "steps": meta["step"],
            "planned_steps": config["steps"],
            "batch_size": config["batch_size"],
            "crops_seen": meta["step"] * config["batch_size"],
            "minutes": round(meta.get("seconds", 0.0) / 60, 1),
            "final": history[-1] if history else None,
            "finished": meta.get("finished", False),
        },
    )
    card.save(folder)
    return card


def build_segmenter_model(
    work: Path,
    repository: Path,
    n_test: int = 90,
    threads: int | None = 1,
    progress: Callable[[str, int], Callable[[int], None] | None] | None = None,
    say: Callable[[str], None] = print,
    max_minutes: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> SegmenterCard | None:
    """The whole recipe (``make segmenter-model``); ``None`` when ``max_minutes`` stopped the
    training before its end (run again to resume)."""
    start = time.monotonic()
    work = Path(work)
    config = load_segmenter_config("segmenter", **(overrides or {}))

    def step(message: str) -> None:
        say(f"[{(time.monotonic() - start) / 60:5.1f} min] {message}")

    pages = work / "pages"
    step(f"caching {config.n_pages} training pages (seed {config.train_seed})")
    write_pages(
        pages,
        config.train_seed,
        config.n_pages,
        progress=progress("synthesising pages", config.n_pages) if progress else None,
    )
    step("training configs/segmenter/segmenter.yaml")
    last = train_segmenter(config, pages, work / "run", resume=True, threads=threads, progress=progress, say=step,
                           max_seconds=None if max_minutes is None else max_minutes * 60)  # fmt: skip
    _, meta = load_segmenter(last)
    if not meta.get("finished"):
        return None
    step(f"exporting to {repository}")
    card = export_segmenter(work / "run", repository)
    folder = Path(repository) / SEGMENTER_NAME
    step(f"evaluating the exported ONNX on {n_test} fresh pages (seed {TEST_SEED})")
    results = evaluate_segmenter(onnx_predictor(folder / card.onnx.file), TEST_SEED, n_test,
                                 progress=progress("evaluating", n_test) if progress else None)  # fmt: skip
    card.metrics = SegmenterMetrics(
        data=f"{n_test} fresh generator pages (seed {TEST_SEED}, raster formats, the generator's mix of layouts, "
        "grids and acquisitions) at the served scale, through the exported ONNX; IoU over all pixels",
        **{k: v for k, v in results.items() if k != "median_ms_per_page"},
    )
    card.speed = time_onnx(folder / card.onnx.file)
    step("making the INT8 variant and checking it against FP32")
    from .segmenter_int8 import quantize_segmenter  # (it imports this module)

    card.save(folder)
    card = quantize_segmenter(repository)
    card.recipe = Recipe(command="make segmenter-model", minutes=round((time.monotonic() - start) / 60, 1),
                         measured="this run, including any resumed part of the training: "
                         f"{card.training['minutes']} min of training")  # fmt: skip
    card.save(folder)
    step("done")
    return card
