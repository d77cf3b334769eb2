"""The readiness canary's expected answer, computed where the model is exported.

A canary is only as good as its expected answer, and that answer depends on the model *and*
on the intake that turns the file into the model's input. So it is never written by hand:
``compute_canary`` sends the canary file through the real intake (``imaging.pipeline``) and
the exported ONNX (``training.predictors.OnnxPredictor``, the serving normalisation) and
records what came back in the model card: once through ``model.onnx`` (``expected``: what the
GPU config's FP32/FP16 and the CPU config's FP32 serve) and, when the card's INT8 variant passed
its parity check, once through ``model.int8.onnx`` (``expected_int8``: what the embedded CPU
server runs by default, ``serving.precision``). Readiness compares Triton's answer with the
expected answer of the variant it runs. ``export_model`` does it for every export and
import; ``refresh_canary`` (``ecgscreen export --refresh-canary``) does it again for a
repository whose intake or model changed since.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

import numpy as np

from ..card import Canary, ModelCard
from ..contract import CANARY_FILE, CLINICAL_FEATURES, MODEL_NAME
from ..imaging.errors import IntakeError
from ..imaging.pipeline import preprocess

__all__ = ["DEFAULT_SOURCE", "DEFAULT_TOLERANCE", "canary_answer", "compute_canary", "refresh_canary"]

# A waveform DICOM: the cheapest file to preprocess (no image decoding), so a probe costs
# milliseconds; a synthetic ECG the project ships, with no real patient in it.
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "samples" / "ecg_waveform.dcm"
# onnxruntime on CPU and TensorRT FP16 on a GPU differ by ~1e-3 in probability; a wrong
# model, a broken intake or a swapped output moves it by far more.
DEFAULT_TOLERANCE = 0.02


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _copy(source: Path, target: Path) -> bytes:
    data = source.read_bytes()
    if source.resolve() != target.resolve():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return data


def compute_canary(
    folder: Path,
    source: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Canary:
    """The canary of the exported model in ``folder`` (its card, ``model.onnx`` and, when the
    card's INT8 variant passed its parity check, ``model.int8.onnx``): ``source`` (default: the
    canary already there, else ``DEFAULT_SOURCE``) is copied next to the card as
    ``CANARY_FILE`` and answered through the real intake and each variant: ``expected`` through
    ``model.onnx``, ``expected_int8`` through the INT8 variant (``None`` without one that
    passed). ``ValueError`` when intake refuses the file."""
    import onnxruntime as ort

    folder = Path(folder)
    card = ModelCard.load(folder)
    if source is None:
        existing = folder / CANARY_FILE
        source = existing if existing.is_file() else DEFAULT_SOURCE
    data = _copy(Path(source), folder / CANARY_FILE)
    try:
        canonical = preprocess(data, size=card.input_size).canonical
    except IntakeError as error:
        raise ValueError(f"the canary {source} is refused by intake: {error.message}") from None
    networks = [folder / card.onnx.file]
    if card.int8 is not None and card.int8.passed:
        networks.append(folder / card.int8.file)
    answers = [canary_answer(network, canonical) for network in networks]
    version = importlib.metadata.version("ecgscreen")
    files = " and ".join(f"{n.relative_to(folder).as_posix()} (sha256 {_sha256(n)[:12]})" for n in networks)
    return Canary(
        file=CANARY_FILE,
        sha256=hashlib.sha256(data).hexdigest(),
        source=Path(source).name,
        expected=answers[0],
        expected_int8=answers[1] if len(answers) > 1 else None,
        tolerance=tolerance,
        computed_with=f"{files} on onnxruntime {ort.__version__} CPU, intake of ecgscreen {version}",
    )


def canary_answer(network: Path, canonical: np.ndarray) -> dict[str, float]:
    """Each task's positive-class probability of ``network`` (an exported image ONNX, FP32 or
    INT8) for the canonical image ``canonical``, rounded to 1e-6, as the card records it."""
    from ..training.predictors import OnnxPredictor  # torch: export-time only

    predictor = OnnxPredictor(Path(network), batch_size=1)
    missing = np.full((1, len(CLINICAL_FEATURES)), np.nan, dtype=np.float32)
    answer = predictor.predict(canonical[None], missing).image
    return {task: round(float(p[0]), 6) for task, p in answer.items()}


def refresh_canary(
    repository: Path, name: str = MODEL_NAME, source: Path | None = None, tolerance: float | None = None
) -> ModelCard:
    """Recompute the canary of ``repository``'s model and write it into its card (after the
    intake or the model changed; the card keeps every other field)."""
    folder = Path(repository) / name
    card = ModelCard.load(folder)
    if tolerance is None:
        tolerance = card.canary.tolerance if card.canary else DEFAULT_TOLERANCE
    card.canary = compute_canary(folder, source, tolerance)
    card.save(folder)
    return card
