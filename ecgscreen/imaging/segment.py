"""What on a raster page is not trace, by the learned page segmenter (``ecg_segment``).

Colour contrast finds the page's ink (``imaging.ink``), but ink is not only trace: a dotted or
dark grid, text blocks and paper texture are dark too, and on a photo their contrast is the
trace's. The segmenter, trained on the generator's pixel-exact masks, says per pixel what a
stroke is. Intake drops the strokes of ink it calls grid (``strokes_not_trace``) and the bits
of grid line, fainter than the pen, joined to a trace (``light_grid``); the trace follower,
the layout reader and the pulse finder then read the rest. Lead labels and separators stay
(they name the rhythm strips and tell 3x4 from 6x2). Text stays too: the layout reader tells
text rows from trace rows by their height, and the segmenter calls a fast wiggle (noise, an
EEG) handwriting, which would cut a trace into pieces. Ink it calls background stays: under
a photo's shadow it misses faint trace the colour threshold finds.

A segmenter is any callable from a page (RGB uint8 (H, W, 3) at ``SEGMENTER_PX_PER_MM``) to its
classes (uint8 (H, W), indices into ``SEGMENTER_CLASSES``). ``OnnxSegmenter`` runs the
committed ONNX in this process (the CLI, training data, benchmarks); Triton's ``ecg_preprocess``
asks the ``ecg_segment`` model through BLS (its ``1/model.py``), so on a GPU node the segmenter
runs on the GPU, and the gateway's reading picture asks Triton's over gRPC
(``service.triton_client``). ``ECGSCREEN_SEGMENTER=off`` reads by colour alone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..contract import (
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_CLASSES,
    SEGMENTER_INPUT,
    SEGMENTER_NAME,
    SEGMENTER_PX_PER_MM,
)

__all__ = [
    "Segmenter",
    "NOT_TRACE",
    "TRACE",
    "OnnxSegmenter",
    "default_segmenter",
    "page_classes",
    "strokes_not_trace",
    "light_grid",
]

Segmenter = Callable[[np.ndarray], np.ndarray]
NOT_TRACE = (SEGMENTER_CLASSES.index("grid"),)
TRACE = tuple(SEGMENTER_CLASSES.index(name) for name in ("trace", "pulse"))
_OFF = ("0", "off", "false", "no")
# A piece of grid on the trace is dropped when its mean darkness is under this share of the
# trace's median: on a photo's dark grid the bits measure ~0.5 of the trace (ecg00046).
LIGHT_GRID = 0.75
# ...measured on the pixels called trace when they are at least this share of the page (a
# 12-lead page's trace covers 1-3 %; a page of flat lines, which the segmenter calls grid, 0.3 %).
MIN_TRACE_SHARE = 0.005
_MULTIPLE = 16  # 2 ** the segmenter's poolings


class OnnxSegmenter:
    """The segmenter's ONNX (from its model card in ``repository``, default the bundled one)
    under onnxruntime on the CPU, one thread: intake runs one page per process thread, so workers scale by process."""

    def __init__(self, repository: Path | None = None, threads: int = 1):
        # imported here: Triton's image carries imaging/ but not the CPU server's helpers
        from ..segmenter_card import SegmenterCard
        from ..serving.onnx_backend import cpu_session, pruned_model
        from ..serving.precision import cpu_segmenter
        from ..serving.triton import DEFAULT_REPOSITORY

        folder = Path(repository or DEFAULT_REPOSITORY) / SEGMENTER_NAME
        card = SegmenterCard.load(folder)
        self.version = card.version
        config = {"parameters": {"intra_op_threads": {"string_value": str(threads)}}}
        # the classes alone: the probabilities' output costs half again the classes' time
        self.precision = cpu_segmenter(card)  # INT8 only when its card says it passed
        self.session = cpu_session(
            pruned_model(str(folder / self.precision.file), [SEGMENTER_CLASS_OUTPUT]), config
        )

    def __call__(self, page: np.ndarray) -> np.ndarray:
        return self.session.run([SEGMENTER_CLASS_OUTPUT], {SEGMENTER_INPUT: page[None]})[0][0]


_lock = threading.Lock()
_default: list = []


def default_segmenter() -> Segmenter | None:
    """The in-process segmenter, loaded once; ``None`` when ``ECGSCREEN_SEGMENTER`` is ``off``."""
    if os.environ.get("ECGSCREEN_SEGMENTER", "on").strip().lower() in _OFF:
        return None
    with _lock:
        if not _default:
            _default.append(OnnxSegmenter())
        return _default[0]


def page_classes(image: np.ndarray, shape: tuple[int, int], segmenter: Segmenter) -> np.ndarray:
    """The segmenter's class of each pixel of ``image`` (RGB or grey uint8) resized to
    ``shape`` (the ink map's size, the page at about ``SEGMENTER_PX_PER_MM``)."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    h, w = shape
    # White paper added up to a multiple of the U-Net's 16 px: every pooling then halves the
    # page exactly and the upsampled maps lie on their skips (an odd size shifts them).
    page = np.full((-(-h // _MULTIPLE) * _MULTIPLE, -(-w // _MULTIPLE) * _MULTIPLE, 3), 255, np.uint8)
    page[:h, :w] = np.asarray(
        Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    )
    classes = np.asarray(segmenter(page))
    if classes.shape != page.shape[:2]:
        raise ValueError(f"the segmenter answered {classes.shape} classes for a {page.shape[:2]} page")
    return classes[:h, :w]


def strokes_not_trace(ink: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The strokes of ``ink`` (8-connected pieces) the segmenter calls grid (``NOT_TRACE``) for
    the most part and trace or pulse hardly anywhere (under a tenth). Judged per stroke, not per
    pixel: where the trace crosses a grid line (a pulse drawn on major lines, a QRS over a
    dotted line) the segmenter gives the crossing to the grid, and a trace cut there loses its
    pulse or its peak; and ink it calls background (faint trace under a photo's shadow) stays."""
    labels, count = ndimage.label(ink, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros_like(ink)
    flat = labels.ravel()
    total = np.maximum(np.bincount(flat, minlength=count + 1), 1)
    other = np.bincount(flat, weights=np.isin(classes, NOT_TRACE).ravel(), minlength=count + 1)
    trace = np.bincount(flat, weights=np.isin(classes, TRACE).ravel(), minlength=count + 1)
    dropped = (other >= 0.5 * total) & (trace < 0.1 * total)
    dropped[0] = False
    return dropped[labels]


def light_grid(ink: np.ndarray, classes: np.ndarray, darkness: np.ndarray) -> np.ndarray:
    """The pieces of ``ink`` the segmenter calls grid and that are lighter than the trace, less
    the pixels where they touch other ink.

    On a photo of a dark grid a stroke of trace carries bits of the grid lines it touches
    (stubs, and whole rectangles of grid joined to it at two points). The stroke is mostly
    trace, so ``strokes_not_trace`` keeps it, and the trace follower reads each stub as a spike
    and each rectangle as a step. Such bits are fainter than the pen (about half the trace's
    darkness on ecg00046). Pieces as dark as the trace stay: a pulse's edge or a QRS stroke
    drawn along a grid line, which the segmenter gives to the grid. The touching pixels stay
    so that the trace is not cut where a line crosses it. Pieces under 1 mm stay: they move a
    sample by a pixel, no more."""
    grid = ink & np.isin(classes, NOT_TRACE)
    trace = ink & np.isin(classes, TRACE)
    if trace.mean() < MIN_TRACE_SHARE:  # too little called trace to measure the pen by
        return np.zeros_like(grid)
    pieces, count = ndimage.label(grid, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros_like(grid)
    touching = grid & ndimage.binary_dilation(ink & ~grid, structure=np.ones((3, 3), dtype=bool))
    mean = ndimage.mean(darkness, pieces, np.arange(1, count + 1))
    extent = np.array(
        [max(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in ndimage.find_objects(pieces)]
    )
    light = np.zeros(count + 1, dtype=bool)
    light[1:] = (mean < LIGHT_GRID * np.median(darkness[trace])) & (extent >= SEGMENTER_PX_PER_MM)
    return light[pieces] & ~touching
