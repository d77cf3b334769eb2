"""Which file of the network the embedded CPU server runs: INT8 or FP32.

The network's CPU config (``configs/cpu.pbtxt`` in its model folder, its python-backend
``1/model.py``) runs the INT8 variant (``card.int8``, ``export.quantize``) when the model card
says it passed its parity check, and ``model.onnx`` otherwise. ``ECGSCREEN_CPU_PRECISION``
(``CPU_PRECISION_ENV``) overrides it: ``fp32`` always runs ``model.onnx``; ``int8`` insists on
the variant (an error when there is none that passed); ``auto`` or unset is the default. The
GPU config (``config.pbtxt``, Triton's onnxruntime backend with TensorRT) always runs
``model.onnx``. The gateway asks the same question for ``/ui/about.json``.

The readiness canary compares Triton's answer with the expected answer of the variant Triton
runs (``card.Canary.expected_for``): ``served_precision`` tells it from the config Triton
loaded (its ``backend``: ``python`` is the CPU config) and ``cpu_network``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..card import ModelCard
from ..contract import CPU_PRECISION_ENV
from ..segmenter_card import SegmenterCard

__all__ = ["PRECISIONS", "CPU_BACKEND", "CpuNetwork", "cpu_network", "cpu_segmenter", "served_precision"]

PRECISIONS = ("auto", "int8", "fp32")
CPU_BACKEND = "python"  # the backend of the network's CPU config (configs/cpu.pbtxt)


@dataclass(frozen=True)
class CpuNetwork:
    precision: str  # "int8" or "fp32"
    file: str  # relative to the card's folder
    why: str  # for the log and people


def cpu_network(card: ModelCard, environ: Mapping[str, str] | None = None) -> CpuNetwork:
    """The network file the CPU config runs for ``card``, given ``environ`` (default
    ``os.environ``). ``ValueError`` for an unknown setting, or ``int8`` without a passed variant."""
    environ = os.environ if environ is None else environ
    requested = (environ.get(CPU_PRECISION_ENV) or "auto").strip().lower()
    if requested not in PRECISIONS:
        raise ValueError(f"{CPU_PRECISION_ENV}={requested!r}: expected one of {', '.join(PRECISIONS)}")
    fp32 = CpuNetwork("fp32", card.onnx.file, "")
    if requested == "fp32":
        return CpuNetwork("fp32", card.onnx.file, f"{CPU_PRECISION_ENV}=fp32")
    int8 = card.int8
    if int8 is not None and int8.passed:
        return CpuNetwork(
            "int8", int8.file,
            f"the model card's INT8 variant passed its parity check (max |dP| {int8.max_abs_diff_fresh:.4f})",
        )  # fmt: skip
    why = (
        "the model card has no INT8 variant"
        if int8 is None
        else f"its INT8 variant was refused: {int8.refused}"
    )
    if requested == "int8":
        raise ValueError(f"{CPU_PRECISION_ENV}=int8, but {why}")
    return CpuNetwork(fp32.precision, fp32.file, why)


def cpu_segmenter(card: SegmenterCard, environ: Mapping[str, str] | None = None) -> CpuNetwork:
    """The segmenter file the CPU runs (its CPU config and intake's in-process segmenter): the
    INT8 variant when its card says it passed (``export.segmenter_int8``: trace IoU as FP32's
    and faster), unless ``ECGSCREEN_CPU_PRECISION=fp32``. ``int8`` asks for it where there is
    one; a segmenter without a passed variant then runs FP32 (the network's setting is the
    one that insists). ``ValueError`` for an unknown setting."""
    environ = os.environ if environ is None else environ
    requested = (environ.get(CPU_PRECISION_ENV) or "auto").strip().lower()
    if requested not in PRECISIONS:
        raise ValueError(f"{CPU_PRECISION_ENV}={requested!r}: expected one of {', '.join(PRECISIONS)}")
    int8 = card.int8
    if requested != "fp32" and int8 is not None and int8.passed:
        return CpuNetwork("int8", int8.file, "the segmenter card's INT8 variant passed its check")
    why = (
        f"{CPU_PRECISION_ENV}=fp32"
        if requested == "fp32"
        else "no INT8 variant"
        if int8 is None
        else f"its INT8 variant was refused: {int8.refused}"
    )
    return CpuNetwork("fp32", card.onnx.file, why)


def served_precision(card: ModelCard, backend: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The variant Triton's network runs, ``"int8"`` or ``"fp32"``: ``backend`` is the loaded
    config's (Triton's model config ``backend``; ``None`` or another backend: the GPU config,
    whose FP32/FP16 answer ``model.onnx``'s); the CPU config (``CPU_BACKEND``) runs
    ``cpu_network(card, environ)``'s. ``ValueError`` as ``cpu_network``."""
    if backend != CPU_BACKEND:
        return "fp32"
    return cpu_network(card, environ).precision
