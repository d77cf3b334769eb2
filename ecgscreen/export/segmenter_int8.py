"""The page segmenter's INT8 variant for the CPU, made at export and kept only when it reads
the trace as FP32 does and runs faster (issue 23).

``quantize_segmenter`` writes ``ecg_segment/1/model.int8.onnx`` next to ``model.onnx``:
onnxruntime's static quantization (QDQ, per-channel INT8 weights, UINT8 activations, MinMax)
of every convolution, calibrated on crops of generator pages at the segmenter's scale. It is
then measured against FP32 on fresh generator pages with their pixel-exact masks (the card's
own metric, ``training.segmenter.evaluate_segmenter``) and timed on an A4 page, one thread,
the two files taking turns. The gate: trace IoU within ``MAX_TRACE_IOU_DIFF`` of FP32's, and
faster than FP32 (a slower INT8 variant buys nothing). A refused variant is deleted; the
card's ``int8`` says what was measured and why. The CPU config and intake's in-process
segmenter run the variant only when it passed (``serving.precision.cpu_segmenter``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract import INT8_MODEL_FILE, SEGMENTER_INPUT, SEGMENTER_NAME
from ..segmenter_card import SegmenterCard, SegmenterInt8
from ..training.segment_data import make_pair, to_segmenter_scale
from ..training.segmenter import evaluate_segmenter
from .segmenter import A4_AT_SCALE, TEST_SEED, onnx_predictor

__all__ = ["MAX_TRACE_IOU_DIFF", "SegmenterInt8Options", "quantize_segmenter"]

log = logging.getLogger(__name__)

MAX_TRACE_IOU_DIFF = 0.01
CALIBRATION_SEED = 30_100  # pages never used for training (1), validation (2) or the card (30000)
CROP = 256  # calibration crops: onnxruntime's MinMax keeps every activation of every crop
METHOD = (
    "onnxruntime static quantization (quantize_static), QDQ, per-channel INT8 weights, UINT8 activations, "
    "MinMax calibration, of every convolution; normalisation, resizing and the class maps in FP32"
)


@dataclass(frozen=True)
class SegmenterInt8Options:
    n_calibration: int = 12  # pages; two crops each
    n_fresh: int = 20  # fresh pages of the card's test seed for the IoU check
    fresh_seed: int = TEST_SEED
    max_trace_iou_diff: float = MAX_TRACE_IOU_DIFF
    repeats: int = 5  # timed A4 pages per file and round (3 rounds, the files taking turns)


def _calibration_crops(n: int, seed: int) -> np.ndarray:
    """Two ``CROP`` px squares of each of ``n`` generator pages at the segmenter's scale, where
    the trace is (the middle of the page's upper and lower halves)."""
    crops = []
    for index in range(n):
        try:
            image, _ = to_segmenter_scale(make_pair(seed, index))
        except ValueError:  # the generator could not draw or pair it
            continue
        h, w = image.shape[:2]
        x = max(0, w // 2 - CROP // 2)
        for y in (max(0, h // 3 - CROP // 2), max(0, 2 * h // 3 - CROP // 2)):
            crop = np.full((CROP, CROP, 3), 255, np.uint8)
            part = image[y : y + CROP, x : x + CROP]
            crop[: part.shape[0], : part.shape[1]] = part
            crops.append(crop)
    return np.stack(crops)


def _quantize(fp32: Path, out: Path, crops: np.ndarray) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(crops)

        def get_next(self):
            crop = next(self.items, None)
            return None if crop is None else {SEGMENTER_INPUT: crop[None]}

    with tempfile.TemporaryDirectory(prefix="ecgscreen-seg-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        quantize_static(
            str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
    os.replace(tmp, out)


def _ms_per_page(paths: list[Path], repeats: int) -> list[float]:
    """One A4 page at the segmenter's scale, classes only, one thread: the files take turns,
    3 rounds, the fastest round's median each (a busy machine only slows them)."""
    predictors = [onnx_predictor(p, threads=1) for p in paths]
    page = np.random.default_rng(0).integers(0, 256, size=(*A4_AT_SCALE, 3), dtype=np.uint8)
    best = [float("inf")] * len(paths)
    for predict in predictors:
        predict(page)
    for _ in range(3):
        for k, predict in enumerate(predictors):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                predict(page)
                times.append(time.perf_counter() - start)
            best[k] = min(best[k], 1000 * float(np.median(times)))
    return best


def quantize_segmenter(repository: Path, options: SegmenterInt8Options | None = None) -> SegmenterCard:
    """Make, check and record the INT8 variant of ``repository``'s segmenter; see the module
    docstring. Returns the card (``card.int8``)."""
    import onnxruntime as ort

    options = options or SegmenterInt8Options()
    folder = Path(repository) / SEGMENTER_NAME
    card = SegmenterCard.load(folder)
    fp32 = folder / card.onnx.file
    int8 = fp32.with_name(INT8_MODEL_FILE)
    crops = _calibration_crops(options.n_calibration, CALIBRATION_SEED)
    _quantize(fp32, int8, crops)
    iou = {
        name: evaluate_segmenter(onnx_predictor(path), options.fresh_seed, options.n_fresh)["per_class_iou"]["trace"]
        for name, path in (("fp32", fp32), ("int8", int8))
    }  # fmt: skip
    ms32, ms8 = _ms_per_page([fp32, int8], options.repeats)
    reasons = []
    if not abs(iou["int8"] - iou["fp32"]) <= options.max_trace_iou_diff:  # None/NaN fails too
        reasons.append(
            f"trace IoU moved {iou['int8'] - iou['fp32']:+.4f} (limit {options.max_trace_iou_diff})"
        )
    if not ms8 < ms32:
        reasons.append(f"not faster: {ms8:.0f} ms per A4 page against FP32's {ms32:.0f}")
    data = int8.read_bytes()
    card.int8 = SegmenterInt8(
        file=str(Path(card.onnx.file).with_name(INT8_MODEL_FILE)),
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        method=METHOD,
        calibration=f"{len(crops)} crops of {CROP} px from {options.n_calibration} generator pages "
        f"(seed {CALIBRATION_SEED}) at the segmenter's scale",
        fresh=f"{options.n_fresh} fresh generator pages (seed {options.fresh_seed}) with their masks",
        trace_iou_fp32=round(iou["fp32"], 4),
        trace_iou_int8=round(iou["int8"], 4),
        ms_per_page_fp32=round(ms32, 1),
        ms_per_page_int8=round(ms8, 1),
        limits={"trace_iou_diff": options.max_trace_iou_diff},
        measured_with=f"onnxruntime {ort.__version__} CPU, 1 thread, ecgscreen {importlib.metadata.version('ecgscreen')}",
        passed=not reasons,
        refused="; ".join(reasons) or None,
    )
    if reasons:
        log.warning("segmenter INT8 variant refused, the CPU serves FP32: %s", card.int8.refused)
        int8.unlink()
    card.save(folder)
    return card


def main(argv: list[str] | None = None) -> None:
    """``python -m ecgscreen.export.segmenter_int8 [REPOSITORY]``: (re)make the variant of the
    segmenter already in a repository (default the bundled one)."""
    import argparse
    import json

    from ..serving.triton import DEFAULT_REPOSITORY

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("repository", nargs="?", type=Path, default=DEFAULT_REPOSITORY)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    card = quantize_segmenter(args.repository)
    print(json.dumps(card.int8.model_dump(), indent=2))


if __name__ == "__main__":
    main()
