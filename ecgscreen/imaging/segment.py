"""What on a raster page is not trace, by the learned page segmenter (``ecg_segment``).

Colour contrast finds the page's ink (``imaging.ink``), but ink is not only trace: a dotted or
dark grid, text blocks and paper texture are dark too, and on a photo their contrast is the
trace's. The segmenter, trained on the generator's pixel-exact masks, says per pixel what a
stroke is. Intake drops the strokes of ink it calls grid (``strokes_not_trace``): the trace follower,
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

from ..contract import SEGMENTER_CLASS_OUTPUT, SEGMENTER_CLASSES, SEGMENTER_INPUT, SEGMENTER_NAME

__all__ = [
    "Segmenter",
    "NOT_TRACE",
    "TRACE",
    "OnnxSegmenter",
    "default_segmenter",
    "page_classes",
    "strokes_not_trace",
]

Segmenter = Callable[[np.ndarray], np.ndarray]
NOT_TRACE = (SEGMENTER_CLASSES.index("grid"),)
TRACE = tuple(SEGMENTER_CLASSES.index(name) for name in ("trace", "pulse"))
_OFF = ("0", "off", "false", "no")
_MULTIPLE = 16  # 2 ** the segmenter's poolings


class OnnxSegmenter:
    """The segmenter's ONNX (from its model card in ``repository``, default the bundled one)
    under onnxruntime on the CPU, one thread: intake runs one page per process thread, so workers scale by process."""

    def __init__(self, repository: Path | None = None, threads: int = 1):
        # imported here: Triton's image carries imaging/ but not the CPU server's helpers
        from ..segmenter_card import SegmenterCard
        from ..serving.onnx_backend import cpu_session, pruned_model
        from ..serving.triton import DEFAULT_REPOSITORY

        folder = Path(repository or DEFAULT_REPOSITORY) / SEGMENTER_NAME
        card = SegmenterCard.load(folder)
        self.version = card.version
        config = {"parameters": {"intra_op_threads": {"string_value": str(threads)}}}
        # the classes alone: the probabilities' output costs half again the classes' time
        self.session = cpu_session(
            pruned_model(str(folder / card.onnx.file), [SEGMENTER_CLASS_OUTPUT]), config
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
