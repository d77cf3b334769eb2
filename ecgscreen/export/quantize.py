"""The network's INT8 variant for the CPU, made at export and kept only when it answers as FP32.

``quantize_export`` writes ``MODEL/<version>/model.int8.onnx`` next to ``model.onnx``:
onnxruntime's static quantization (QDQ, per-channel INT8 weights, UINT8 activations, MinMax
calibration) of the convolutions, with three corrections measured on the demo network
(issue 23; ``scripts/int8_parity.py --sweep`` measures them for another one):

- **Sensitive convolutions stay FP32** (matched by node name), in two recipes tried in order
  (``RECIPES``), the first whose variant passes the gate kept: ``STRUCTURAL_FP32``, the stem's
  first convolution (its input is three differently normalised copies of one grey image, which
  one per-tensor INT8 grid cannot hold, and on three input channels INT8 kernels are slower
  than FP32's) and the residual downsample convolutions (their output is the block's identity
  path: alone, layer2's moved the demo's probabilities by 0.09); then ``FP32_CONVS``, those,
  the rest of the stem and the 3x3 convolutions that a one-layer-at-a-time sweep on the demo
  network's calibration-seed ECGs found most sensitive. Every FP32 convolution costs speed
  (``resnet34d`` at its canonical size on one thread, the files taking turns: FP32 206 ms, 67-70 with
  ``STRUCTURAL_FP32``, 109-110 with ``FP32_CONVS``; the stem's last convolution alone, 32 to 64
  channels at 192 x 192 px, took 18 ms in FP32 and 3.4 in INT8), so a network that passes with
  fewer keeps fewer; the demo network needs the second recipe (with the first its probabilities
  moved by up to 0.058). The card's ``int8.tried`` says what an earlier recipe measured.
- **The identity path stays FP32** (``_float_identity``): a residual block's input feeds the
  next convolution through its Q/DQ pair, but the residual Add, pools and the heads read the
  float tensor, so the quantization error does not accumulate along the skip connections.
- **Bias correction** (``_correct_biases``, Nagel et al. 2019): in order, each quantized
  convolution's per-channel mean output error against FP32 on the calibration images is
  subtracted from its INT32 bias.

The input's normalisation, the heads, the probabilities and the closed-form Grad-CAM++ stay in
FP32. Calibration images are canonical inputs painted by the serving intake
(``imaging.pipeline.preprocess``) from generator ECGs in every format (or from ``--data``'s
files); a quarter of them is held out.

Parity is a gate, not a hope (``MAX_PROBABILITY_DIFF``, ``MAX_AUC_DIFF``): the variant is
kept only when, against FP32, no probability moves by more than 0.02 on the held-out images
and on fresh generator ECGs (another seed, painted from the generator's recordings), and each
task's AUC on those fresh ECGs moves by at most 0.005. A refused variant is deleted; the card's
``int8`` says what was measured and why it was refused. The readiness canary is no part of the
gate: each variant has its own expected answer (``card.Canary``: ``expected`` through FP32,
what the GPU config's FP32/FP16 serve, ``expected_int8`` through INT8), so the card's canary is
recomputed after the check, with ``expected_int8`` when the variant passed (what the embedded
CPU server then runs by default, ``serving.precision``); how far the two answers are apart is
recorded (``int8.canary_diff``), for people.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..card import ModelCard, QuantizedFile
from ..contract import INT8_MODEL_FILE, MODEL_INPUT, MODEL_NAME, probability_output

__all__ = [
    "MAX_PROBABILITY_DIFF",
    "MAX_AUC_DIFF",
    "CALIBRATION_SEED",
    "FRESH_SEED",
    "Int8Options",
    "intake_canonicals",
    "fresh_canonicals",
    "quantize_network",
    "quantize_export",
]

log = logging.getLogger(__name__)

MAX_PROBABILITY_DIFF = 0.02  # max |P(INT8) - P(FP32)|, any task, held-out and fresh ECGs
MAX_AUC_DIFF = 0.005  # |AUC(INT8) - AUC(FP32)| per task, fresh ECGs
CALIBRATION_SEED = 23_000  # generator seeds never used for training (1) or the demo's test (20000)
FRESH_SEED = 23_001
QUANTIZED_OPS = ("Conv",)
# Convolutions kept in FP32, by node-name fragment (timm ResNet-D names). The stem and the
# downsample convolutions by construction (see the module docstring); the six 3x3 ones are the
# demo network's most sensitive in a one-layer sweep on calibration-seed ECGs (issue 23).
STRUCTURAL_FP32 = (
    "/conv1/conv1.0/",  # the stem's first convolution, on the normalised grey image
    "/downsample/",  # the residual identity path's 1x1 convolutions
)
FP32_CONVS = (
    "/conv1/conv1.",  # the whole stem: conv1.0, conv1.3, conv1.6
    "/downsample/",
    "/layer1/layer1.0/conv1/",
    "/layer1/layer1.1/conv2/",
    "/layer2/layer2.0/conv2/",
    "/layer2/layer2.1/conv1/",
    "/layer2/layer2.1/conv2/",
    "/layer3/layer3.0/conv1/",
)
RECIPES = (STRUCTURAL_FP32, FP32_CONVS)  # fewest FP32 convolutions first
METHOD = (
    "onnxruntime static quantization (quantize_static), QDQ, per-channel INT8 weights, UINT8 "
    "activations, MinMax calibration, of the convolutions except {fp32} (kept FP32); residual "
    "identity paths read the float tensors (only convolution inputs are quantized); per-channel "
    "bias correction of each INT8 convolution on the calibration images; normalisation, heads, "
    "probabilities and CAM in FP32"
)


@dataclass(frozen=True)
class Int8Options:
    """How ``quantize_export`` calibrates and checks the INT8 variant."""

    n_calibration: int = 128  # intake-painted ECGs; a quarter of them held out
    n_fresh: int = 600  # fresh ECGs for the AUC check
    data: Path | None = None  # calibrate on this dataset's files (``labels.csv``) instead
    # node-name fragments of the convolutions kept FP32, per recipe, tried in order
    recipes: tuple[tuple[str, ...], ...] = RECIPES
    seed: int = CALIBRATION_SEED
    fresh_seed: int = FRESH_SEED
    max_probability_diff: float = MAX_PROBABILITY_DIFF
    max_auc_diff: float = MAX_AUC_DIFF

    def __post_init__(self) -> None:
        if self.n_calibration < 8:
            raise ValueError(
                f"n_calibration {self.n_calibration}: at least 8 ECGs (6 to calibrate, 2 held out)"
            )
        if not self.recipes:
            raise ValueError("recipes: at least one set of FP32 convolutions (it may be empty)")
        if self.n_fresh < 20:
            raise ValueError(f"n_fresh {self.n_fresh}: at least 20 fresh ECGs to compare AUCs")


def intake_canonicals(n: int, seed: int, size: int, progress=None) -> np.ndarray:
    """``(m, S, S)`` canonical inputs of generator ECGs ``0..n-1`` of ``seed`` in every format,
    through the serving intake (files it refuses are left out, as in serving)."""
    from ..imaging.errors import IntakeError
    from ..imaging.pipeline import preprocess
    from ..synth.generate import encode_record, make_record

    images = []
    for index in range(n):
        try:
            images.append(preprocess(encode_record(make_record(seed, index)), size).canonical)
        except IntakeError:
            pass
        if progress:
            progress(1)
    if not images:
        raise ValueError(f"intake refused all {n} calibration ECGs of seed {seed}")
    return np.stack(images)


def fresh_canonicals(n: int, seed: int, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` generator ECGs of ``seed`` painted straight from their recordings (the waveform
    path), and their labels: ``scar`` and ``lvef`` (LVEF < 50 %) as 0/1."""
    from ..imaging.canonical import signal_to_canonical
    from ..synth.generate import SAMPLE_RATE, make_record

    records = [make_record(seed, index) for index in range(n)]
    images = np.stack([signal_to_canonical(r.signal, SAMPLE_RATE, size) for r in records])
    labels = {
        "scar": np.array([int(r.patient.scar) for r in records]),
        "lvef": np.array([int(r.patient.lvef < 50.0) for r in records]),
    }
    return images, labels


class _Reader:
    """onnxruntime's ``CalibrationDataReader``: the calibration images in batches."""

    def __init__(self, images: np.ndarray, batch: int = 8) -> None:
        self.batches = iter([images[i : i + batch] for i in range(0, len(images), batch)])

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {MODEL_INPUT: batch}


def quantize_network(
    fp32: Path, out: Path, images: np.ndarray, fp32_convs: tuple[str, ...] = FP32_CONVS
) -> list[str]:
    """Write the static INT8 quantization of ``fp32`` (our image ONNX) to ``out``, calibrated
    and bias-corrected on ``images`` (``(N, S, S)`` uint8 canonical inputs); convolutions whose
    node name contains one of ``fp32_convs`` stay FP32. Returns those nodes' names."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader = type("Reader", (_Reader, CalibrationDataReader), {})(images)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ecgscreen-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in QUANTIZED_OPS]
        kept = [n for n in convs if any(f in n for f in fp32_convs)]
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        quantize_static(
            str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=kept,
        )  # fmt: skip
        model = _float_identity(onnx.load(str(tmp)))
        model = _correct_biases(model, onnx.load(str(prepared)), images)
        onnx.save(model, str(tmp))
    os.replace(tmp, out)
    return kept


def _float_identity(model, quantized_ops=QUANTIZED_OPS):
    """Consumers of a DequantizeLinear output that are not quantized ops (a residual Add, a
    pool, the heads) read the float tensor its QuantizeLinear read: only convolution inputs
    are quantized, and the skip connections carry FP32. A quantized op's own output Q/DQ stays
    (onnxruntime fuses it into QLinearConv)."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    initializers = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.op_type in (*quantized_ops, "QuantizeLinear", "DequantizeLinear"):
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in initializers:
                continue
            q = producer.get(dq.input[0])
            source = producer.get(q.input[0]) if q is not None else None
            if q is None or q.op_type != "QuantizeLinear" or (source and source.op_type in quantized_ops):
                continue
            node.input[k] = q.input[0]
    while True:  # Q/DQ pairs nobody reads any more
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [
            n for n in graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)
        ]  # fmt: skip
        if not dead:
            return model
        for node in dead:
            graph.node.remove(node)


def _channel_means(model, names: list[str], images: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Per-channel mean of each ``names`` tensor (N, C, H, W) of ``model`` over ``images``."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names if n not in have
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    sums, counts = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
    for i in range(0, len(images), batch):
        for name, value in zip(names, session.run(names, {MODEL_INPUT: images[i : i + batch]}), strict=True):
            sums[name] = sums[name] + value.sum(axis=(0, 2, 3), dtype=np.float64)
            counts[name] += value.shape[0] * value.shape[2] * value.shape[3]
    return {n: sums[n] / counts[n] for n in names}


def _correct_biases(model, reference, images: np.ndarray):
    """Empirical bias correction, in graph order: each INT8 convolution's per-channel mean
    output error against ``reference`` (the FP32 graph) on ``images`` is taken off its INT32
    bias (in steps of the bias's own scale)."""
    from onnx import numpy_helper

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    initializers = {i.name: i for i in graph.initializer}

    def quantized(node) -> bool:
        dq = producer.get(node.input[1])
        return len(node.input) > 2 and dq is not None and dq.op_type == "DequantizeLinear"

    convs = [n for n in graph.node if n.op_type == "Conv" and quantized(n)]
    target = _channel_means(reference, [c.output[0] for c in convs], images)
    for conv in convs:
        error = _channel_means(model, [conv.output[0]], images)[conv.output[0]] - target[conv.output[0]]
        dq = producer[conv.input[2]]
        bias, scale = initializers[dq.input[0]], numpy_helper.to_array(initializers[dq.input[1]])
        values = numpy_helper.to_array(bias).astype(np.int64) - np.round(error / scale).astype(np.int64)
        bias.CopyFrom(numpy_helper.from_array(values.astype(np.int32), bias.name))
    return model


def _probabilities(
    path: Path, images: np.ndarray, tasks: list[str], batch: int = 16
) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [probability_output(t) for t in tasks]
    chunks = [session.run(names, {MODEL_INPUT: images[i : i + batch]}) for i in range(0, len(images), batch)]
    return {t: np.concatenate([c[k] for c in chunks])[:, 0].astype(np.float64) for k, t in enumerate(tasks)}


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(a[t] - b[t]).max()) for t in a)


def quantize_export(
    repository: Path,
    name: str = MODEL_NAME,
    options: Int8Options | None = None,
    progress=None,
    keep_refused: bool = False,
) -> ModelCard:
    """Make, check and record the INT8 variant of ``repository``'s exported model (its card
    and ``model.onnx``); see the module docstring. Returns the card (``card.int8``).
    ``keep_refused`` leaves a refused variant's file in place (to measure it; never served)."""
    import onnxruntime as ort

    from ..training.metrics import roc_auc
    from .canary import canary_answer, compute_canary
    from .novelty import _canonicals
    from .onnx_export import _sha256

    options = options or Int8Options()
    folder = Path(repository) / name
    card = ModelCard.load(folder)
    fp32 = folder / card.onnx.file
    int8 = fp32.with_name(INT8_MODEL_FILE)
    if options.data is not None:
        split = "train"  # its training split when it has one
        try:
            images = _canonicals(options.data, split, options.n_calibration, card.input_size, progress)
        except ValueError:  # np.stack of nothing: no such split
            split, images = (
                "every",
                _canonicals(options.data, None, options.n_calibration, card.input_size, progress),
            )
        described = (
            f"{len(images)} ECGs of {Path(options.data).name} ({split} split) through the serving intake"
        )
    else:
        images = intake_canonicals(options.n_calibration, options.seed, card.input_size, progress)
        described = (
            f"{len(images)} generator ECGs (seed {options.seed}, standard difficulty, every format, layout "
            f"and acquisition) through the serving intake; {options.n_calibration - len(images)} refused"
        )
    rng = np.random.default_rng(options.seed)
    order = rng.permutation(len(images))
    n_held = max(2, len(images) // 4)
    held, calibration = images[order[:n_held]], images[order[n_held:]]
    tasks = list(card.tasks)
    fresh, labels = fresh_canonicals(options.n_fresh, options.fresh_seed, card.input_size)
    held32, p32 = _probabilities(fp32, held, tasks), _probabilities(fp32, fresh, tasks)
    auc32 = {t: roc_auc(labels[t], p32[t]) for t in tasks}
    tried = []  # the recipes refused before the one recorded
    for k, recipe in enumerate(options.recipes):
        kept = quantize_network(fp32, int8, calibration, recipe)
        held_diff = _max_diff(held32, _probabilities(int8, held, tasks))
        p8 = _probabilities(int8, fresh, tasks)
        fresh_diff = _max_diff(p32, p8)
        auc8 = {t: roc_auc(labels[t], p8[t]) for t in tasks}
        reasons = []
        if held_diff > options.max_probability_diff:
            reasons.append(f"held-out max |dP| {held_diff:.4f} > {options.max_probability_diff}")
        if fresh_diff > options.max_probability_diff:
            reasons.append(f"fresh max |dP| {fresh_diff:.4f} > {options.max_probability_diff}")
        for t in tasks:
            if not abs(auc8[t] - auc32[t]) <= options.max_auc_diff:  # NaN fails too
                reasons.append(f"{t} AUC moved {auc8[t] - auc32[t]:+.4f} (limit {options.max_auc_diff})")
        if not reasons:
            break
        if k < len(options.recipes) - 1:
            log.info("INT8 with FP32 %s refused (%s): keeping more convolutions FP32", recipe, reasons)
            tried.append(f"FP32 {', '.join(recipe) or 'none'}: refused, {'; '.join(reasons)}")
    canary_diff = None  # for people: each variant has its own expected canary answer
    if card.canary is not None:
        from ..imaging.pipeline import preprocess

        canonical = preprocess(card.canary.read(folder), size=card.input_size).canonical
        a32, a8 = canary_answer(fp32, canonical), canary_answer(int8, canonical)
        canary_diff = max(abs(a8[t] - a32[t]) for t in a32)
    card.int8 = QuantizedFile(
        file=str(Path(card.onnx.file).with_name(INT8_MODEL_FILE)),
        sha256=_sha256(int8),
        bytes=int8.stat().st_size,
        method=METHOD.format(fp32=", ".join(kept) or "none"),
        calibration=described,
        n_calibration=len(calibration),
        n_held_out=n_held,
        max_abs_diff_held_out=held_diff,
        fresh=f"{options.n_fresh} generator ECGs (seed {options.fresh_seed}) painted from their recordings",
        n_fresh=options.n_fresh,
        max_abs_diff_fresh=fresh_diff,
        auc_fp32=auc32,
        auc_int8=auc8,
        canary_diff=canary_diff,
        limits={"max_abs_diff": options.max_probability_diff, "auc_diff": options.max_auc_diff},
        measured_with=f"onnxruntime {ort.__version__} CPU, ecgscreen {importlib.metadata.version('ecgscreen')}",
        passed=not reasons,
        refused="; ".join(reasons) or None,
        tried=tried,
    )
    if reasons:
        log.warning("INT8 variant refused, the CPU serves FP32: %s", card.int8.refused)
        if not keep_refused:
            int8.unlink()
    card.save(folder)
    if card.canary is not None:  # each served variant's answer: FP32's, and INT8's when it passed
        canary = compute_canary(folder, tolerance=card.canary.tolerance)
        canary.source = card.canary.source  # the same file, from where it first came
        card.canary = canary
        card.save(folder)
    log.info("INT8 variant %s: max |dP| %.4f held-out, %.4f fresh; AUC %s -> %s",
             "kept" if not reasons else "refused", held_diff, fresh_diff, auc32, auc8)  # fmt: skip
    return card
