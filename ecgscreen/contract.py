"""The names and numbers training, export, the Triton models and the gateway all share.

Torch-free and numpy-free on purpose: the gateway, the Triton python models and the Bento
import it without the training stack. A consumer that needs one of these facts imports it
from here, never writes it out again; ``ecgscreen.card.check_triton_configs`` holds the
Triton configs (which cannot import Python) to the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "TASKS",
    "TASK_NAMES",
    "TASK_DESCRIPTIONS",
    "canonical_tasks",
    "CLINICAL_FEATURES",
    "CANONICAL_SIZE",
    "FEATURE_STRIDE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EMBED_DIM",
    "NUM_CLASSES",
    "MODEL_NAME",
    "ENSEMBLE_NAME",
    "PREPROCESS_NAME",
    "SEGMENTER_NAME",
    "SEGMENTER_CLASSES",
    "SEGMENTER_INPUT",
    "SEGMENTER_CLASS_OUTPUT",
    "SEGMENTER_PROBABILITY_OUTPUT",
    "SEGMENTER_PX_PER_MM",
    "SEGMENTER_MEAN",
    "SEGMENTER_STD",
    "MODEL_INPUT",
    "MODEL_CARD_FILE",
    "FUSION_FILE",
    "INT8_MODEL_FILE",
    "CPU_PRECISION_ENV",
    "CANARY_FILE",
    "CANARY_OUTCOMES",
    "ENSEMBLE_INPUT",
    "ENSEMBLE_PROBABILITY",
    "ENSEMBLE_LOGITS",
    "ENSEMBLE_EMBEDDING",
    "ENSEMBLE_CAM",
    "ENSEMBLE_CANONICAL",
    "ENSEMBLE_INFO",
    "probability_output",
    "SIGNAL_RATE_HZ",
    "PAGE_MM",
    "PAPER_SPEED_MM_S",
    "GAIN_MM_PER_MV",
    "INTENDED_USE",
    "RISK_MEDIUM_FROM",
    "RISK_HIGH_FROM",
    "risk_level",
]

# -- tasks and clinical features ---------------------------------------------------------------
# The study's two tasks, in the order of every per-task output (logits, CAM, probabilities).
TASKS: tuple[str, ...] = ("scar", "lvef")
TASK_NAMES: dict[str, str] = {"scar": "Myocardial scar", "lvef": "LVEF < 50 %"}  # for people
TASK_DESCRIPTIONS: dict[str, str] = {  # what the label means (model card)
    "scar": "myocardial scar (CMR late gadolinium enhancement)",
    "lvef": "LVEF < 50 %",
}
# Order of the clinical vector everywhere (fusion ONNX input, imputation means, the API keys).
CLINICAL_FEATURES: tuple[str, ...] = ("age", "female_gender", "dm", "ht", "smoke", "dlp")


def canonical_tasks(tasks: Iterable[str]) -> tuple[str, ...]:
    """``tasks`` in the canonical order (scar before lvef); ``ValueError`` unless a non-empty,
    duplicate-free subset of ``TASKS``."""
    tasks = tuple(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks {list(tasks)} must be a non-empty, duplicate-free subset of {list(TASKS)}")
    return tuple(t for t in TASKS if t in tasks)


# -- the model input and the network's shape ---------------------------------------------------
CANONICAL_SIZE = 384  # the study's input size: the canonical image is CANONICAL_SIZE square
FEATURE_STRIDE = 32  # ResNet's last conv block is 1/32 of the input: the CAM is 12 x 12 at 384
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)  # input normalisation
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
EMBED_DIM = 512  # the study's embedding between the backbone and the task heads
NUM_CLASSES = 2  # each task head: (negative, positive)

# -- the Triton model repository ---------------------------------------------------------------
MODEL_NAME = "ecg_multitask"  # the network (ONNX), its fusion head and its model card
ENSEMBLE_NAME = "ecg_screening"  # what clients call: file bytes in, answers out
PREPROCESS_NAME = "ecg_preprocess"  # intake, as a python-backend model
MODEL_CARD_FILE = "model_card.json"
FUSION_FILE = "fusion.onnx"
# The network's INT8 variant (``export.quantize``), next to ``model.onnx`` in the version folder;
# the embedded CPU server runs it when the card says it passed its parity check, unless
# ``CPU_PRECISION_ENV`` says ``fp32`` (``serving.precision``).
INT8_MODEL_FILE = "model.int8.onnx"
CPU_PRECISION_ENV = "ECGSCREEN_CPU_PRECISION"
CANARY_FILE = "canary.dcm"  # the readiness canary's ECG, next to the card (its ``canary`` field)
# What one canary round can come to (the gateway's ``ecgscreen_canary_total{outcome}``, the
# supervisor's and the probe's verdicts): answered right, answered wrong, answered with an
# error, no connection, no answer in time.
CANARY_OUTCOMES: tuple[str, ...] = ("ok", "wrong_answer", "error", "unavailable", "timeout")

# The canonical image, uint8 (S, S), white paper and black trace: intake's output and the
# network's input under one name. The network normalises it inside its graph, so Triton moves
# S * S bytes per ECG between intake and the network, not 3 * S * S floats (12x less).
MODEL_INPUT = "canonical"

# The ensemble's tensors (KServe v2 names clients use).
ENSEMBLE_INPUT = "ECG_BYTES"
ENSEMBLE_PROBABILITY: dict[str, str] = {"scar": "SCAR_PROB", "lvef": "LVEF_PROB"}
ENSEMBLE_LOGITS = "LOGITS"
ENSEMBLE_EMBEDDING = "EMBEDDING"
ENSEMBLE_CAM = "CAM"
ENSEMBLE_CANONICAL = "CANONICAL"
ENSEMBLE_INFO = "PREPROC_INFO"


def probability_output(task: str) -> str:
    """The ONNX / ``ecg_multitask`` output holding ``task``'s positive-class probability."""
    return f"{task}_probability"


# -- the page segmenter (``ecg_segment``) --------------------------------------------------------
# Per-pixel classes of a printed page, in the order of the generator's masks
# (``synth.masks.CLASSES``, held equal by a test) and of the segmenter's class axis.
SEGMENTER_NAME = "ecg_segment"
SEGMENTER_CLASSES: tuple[str, ...] = (
    "background",
    "grid",
    "trace",
    "pulse",
    "lead_label",
    "text",
    "separator",
)
# Input: the page as RGB uint8 (B, H, W, 3), any H and W (a grey page as three equal channels),
# at SEGMENTER_PX_PER_MM (intake's working resolution, ``imaging.images.WORKING_PX_PER_MM``:
# an A4 page is about 1188 x 840). The graph normalises it: (x / 255 - mean) / std.
SEGMENTER_INPUT = "page"
SEGMENTER_PX_PER_MM = 4.0
SEGMENTER_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
SEGMENTER_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)
# Outputs: each pixel's most likely class (UINT8 (B, H, W), an index into SEGMENTER_CLASSES)
# and each class's probability x 255, rounded (UINT8 (B, C, H, W); a quarter of FP32's bytes).
SEGMENTER_CLASS_OUTPUT = "classes"
SEGMENTER_PROBABILITY_OUTPUT = "probabilities"

# -- the 12-lead signal every input becomes ------------------------------------------------------
# Intake turns every file (waveform, PDF, scan, photo) into a 12-lead signal at this rate
# before one painter draws the canonical input from it; `digitize` exports it.
SIGNAL_RATE_HZ = 500

# -- paper ECGs --------------------------------------------------------------------------------
PAGE_MM: tuple[float, float] = (297.0, 210.0)  # A4 landscape, as carts print
PAPER_SPEED_MM_S = 25.0
GAIN_MM_PER_MV = 10.0  # standard gain; 12x1 pages print at half of it to fit twelve rows

# -- what the service says about itself --------------------------------------------------------
INTENDED_USE = "Research use only. Not for diagnosis."
# Risk levels of the study's app: below 30 % low, 30-70 % medium, from 70 % high.
RISK_MEDIUM_FROM = 0.3
RISK_HIGH_FROM = 0.7


def risk_level(probability: float) -> str:
    """The study's app: ``"low"`` below 30 %, ``"medium"`` to 70 %, ``"high"`` from 70 %."""
    if probability < RISK_MEDIUM_FROM:
        return "low"
    return "medium" if probability < RISK_HIGH_FROM else "high"
